import { describe, expect, test } from "bun:test";
import { APIError } from "better-auth/api";
import { profileOnCreate } from "../../src/auth/profile-rules";

// The hook Better Auth runs before creating a user; called here as Better Auth calls it, with the
// route in context.path. A GitHub sign-up cannot be sent back to fix its profile: it is fitted.
const hook = profileOnCreate();
const user = (fields: { name?: string; image?: string | null }) => ({ email: "octo.cat@example.com", emailVerified: true, ...fields });

describe("a new account's name and avatar", () => {
  test("an email sign-up breaking the rules is refused naming the field; a good one is trimmed", async () => {
    const signUp = { path: "/sign-up/email" };
    await expect(hook(user({ name: "" }), signUp)).rejects.toBeInstanceOf(APIError);
    await expect(hook(user({ name: "Ada", image: "data:image/svg+xml,<svg/>" }), signUp)).rejects.toThrow('Invalid body field "image"');
    await expect(hook(user({ name: "Ada \ud83d" }), signUp)).rejects.toThrow("unpaired UTF-16 surrogates");
    expect((await hook(user({ name: " Ada " }), signUp)).data).toMatchObject({ name: "Ada", email: "octo.cat@example.com" });
  });

  test("a GitHub sign-up is fitted: the name cut to 100 or taken from the email, an unusable avatar dropped", async () => {
    const github = { path: "/callback/github" };
    expect((await hook(user({ name: "x".repeat(300), image: "https://avatars.githubusercontent.com/u/1" }), github)).data).toMatchObject({
      name: "x".repeat(100),
      image: "https://avatars.githubusercontent.com/u/1",
    });
    expect((await hook(user({ name: "  ", image: "javascript:alert(1)" }), github)).data).toMatchObject({ name: "octo.cat", image: null });
    expect((await hook(user({ name: "Octo Cat", image: null }), github)).data).toMatchObject({ name: "Octo Cat", image: null });
    // Control characters and bidirectional overrides are taken out, as PATCH /me would refuse them.
    expect((await hook(user({ name: "Octo\u202e\nCat" }), github)).data).toMatchObject({ name: "OctoCat" });
    expect((await hook(user({ name: "\u0007\u2066" }), github)).data).toMatchObject({ name: "octo.cat" });
    // Cut at 100 characters as PATCH /me counts them, never through an emoji (half of one cannot be stored).
    expect((await hook(user({ name: `a${"\u{1f600}".repeat(120)}` }), github)).data).toMatchObject({ name: `a${"\u{1f600}".repeat(99)}` });
  });
});
