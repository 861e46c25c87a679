import { createAuthClient } from "better-auth/client";

// Runs in the browser (bundled by serve.ts): a minimal frontend on its own origin that signs in
// to Warren the way a web app would, and writes each answer into the page for the test to read.

const api = new URLSearchParams(location.search).get("api") ?? "";
// Kept in memory only: the fallback where the browser refuses Warren's cookie (see load-me-bearer).
let bearer = "";
const auth = createAuthClient({
  baseURL: api,
  fetchOptions: {
    credentials: "include",
    onSuccess: (ctx) => {
      bearer = ctx.response.headers.get("set-auth-token") ?? bearer;
    },
  },
});

// The same token for Better Auth's own calls (getSession, signOut), as docs/frontend.md shows.
const authByBearer = createAuthClient({ baseURL: api, fetchOptions: { auth: { type: "Bearer", token: () => bearer } } });

const field = (id: string) => (document.getElementById(id) as HTMLInputElement).value;

function show(id: string, value: unknown) {
  document.getElementById(id)!.textContent = JSON.stringify(value);
}

/** A blocked CORS response surfaces as a TypeError: the page never sees status or body. */
function onButton(button: string, output: string, action: () => Promise<unknown>) {
  document.getElementById(button)!.addEventListener("click", async () => {
    document.getElementById(output)!.textContent = "";
    try {
      show(output, await action());
    } catch (err) {
      show(output, { networkError: String(err) });
    }
  });
}

onButton("sign-up", "sign-up-result", async () => {
  const { data, error } = await auth.signUp.email({ name: field("name"), email: field("email"), password: field("password") });
  return { user: data?.user ?? null, error: error && { status: error.status, code: error.code } };
});

onButton("sign-in", "sign-in-result", async () => {
  const { data, error } = await auth.signIn.email({ email: field("email"), password: field("password") });
  return { user: data?.user ?? null, error: error && { status: error.status, code: error.code } };
});

// The same sign-in as a "simple" cross-origin request (a form-encoded body): the browser sends it
// without a preflight, credentials and all, and only afterwards decides whether the page may read
// the answer. From an untrusted origin this reaches Better Auth, which must refuse it itself.
onButton("sign-in-simple", "sign-in-simple-result", async () => {
  const res = await fetch(`${api}/api/auth/sign-in/email`, {
    method: "POST",
    credentials: "include",
    body: new URLSearchParams({ email: field("email"), password: field("password") }),
  });
  return { status: res.status, body: await res.json() };
});

onButton("github", "github-result", async () => {
  // better-auth/client sends the window to GitHub; it comes back to this page, signed in.
  const back = `${location.origin}/?api=${encodeURIComponent(api)}&from=github`;
  const { error } = await auth.signIn.social({ provider: "github", callbackURL: back });
  return { error: error && { status: error.status, code: error.code } };
});

onButton("load-me", "me-result", async () => {
  const res = await fetch(`${api}/api/v1/me`, { credentials: "include" });
  return { status: res.status, body: await res.json() };
});

onButton("load-me-bearer", "me-bearer-result", async () => {
  const res = await fetch(`${api}/api/v1/me`, { headers: { authorization: `Bearer ${bearer}` } });
  return { status: res.status, body: await res.json() };
});

onButton("session-bearer", "session-bearer-result", async () => {
  const { data, error } = await authByBearer.getSession();
  return { email: data?.user.email ?? null, error: error && { status: error.status, code: error.code } };
});

// The same sign-in as a plain HTML form: no preflight, the one cross-origin POST a hostile page
// can always make. Only Better Auth's own Origin check stands in its way.
const form = document.getElementById("classic-sign-in") as HTMLFormElement;
form.action = `${api}/api/auth/sign-in/email`;
form.addEventListener("submit", () => {
  (form.elements.namedItem("email") as HTMLInputElement).value = field("email");
  (form.elements.namedItem("password") as HTMLInputElement).value = field("password");
});

document.body.dataset.ready = "true";
