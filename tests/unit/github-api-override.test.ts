import { describe, expect, test } from "bun:test";
import { overriddenGithubUrl } from "../../src/auth/github-api-override";

describe("overriddenGithubUrl (test-only GitHub stand-in routing)", () => {
  const base = "http://127.0.0.1:4555/gh/";

  test("routes exactly github.com and api.github.com over https, keeping path and query", () => {
    expect(overriddenGithubUrl("https://github.com/login/oauth/access_token?x=1", base)).toBe(
      "http://127.0.0.1:4555/gh/login/oauth/access_token?x=1",
    );
    expect(overriddenGithubUrl("https://api.github.com/user/emails", base)).toBe("http://127.0.0.1:4555/gh/user/emails");
  });

  test("leaves every other URL alone", () => {
    for (const url of [
      "http://github.com/login/oauth/access_token",
      "https://evilgithub.com/user",
      "https://github.com.evil.example/user",
      "https://gist.github.com/x",
      "https://models.dev/api.json",
      "not a url",
    ]) {
      expect(overriddenGithubUrl(url, base)).toBeNull();
    }
  });
});
