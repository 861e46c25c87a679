import type { Context } from "hono";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { AppError } from "../errors";
import type { AppEnv } from "../context";

/**
 * Reverse proxying to a sandbox's servers (the agent, add-on services), shared by
 * src/routes/agent-proxy.ts and src/routes/sandbox-addons.ts. The callers check ownership and
 * state; this forwards the request, streaming both ways, or bridges a WebSocket.
 */

// Hop-by-hop headers (RFC 9110 §7.6.1) and the caller's own credentials never travel upstream:
// the sandbox's server never sees the user's session (the agent gets Warren's basic auth instead).
// Origin is dropped too: upstreams compare it with their own host, which the proxy changes.
const DROP_REQUEST = ["host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-authorization", "authorization", "cookie", "content-length", "origin"];
const DROP_RESPONSE = ["connection", "keep-alive", "transfer-encoding", "upgrade", "trailer", "www-authenticate", "set-cookie", "content-length", "content-encoding"];
// Headers of a WebSocket handshake that the client side of the bridge sets itself.
const DROP_WEBSOCKET = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"];

/** The upstream URL: the part of the request path after `prefix`, and the query, on `base`. */
export function upstreamUrl(c: Context, prefix: string, base: string): URL {
  const url = new URL(c.req.url);
  const target = new URL(url.pathname.slice(prefix.length) || "/", base);
  target.search = url.search;
  return target;
}

function requestHeaders(c: Context, extra: Record<string, string>, drop: string[] = []): Headers {
  const headers = new Headers(c.req.raw.headers);
  for (const h of [...DROP_REQUEST, ...drop]) headers.delete(h);
  for (const [k, v] of Object.entries(extra)) headers.set(k, v);
  return headers;
}

/** Forwards the request (any method, body streamed) and streams the upstream's answer back. */
export async function forwardHttp(c: Context, target: URL, extraHeaders: Record<string, string> = {}): Promise<Response> {
  const method = c.req.method;
  const upstream = await fetch(target, {
    method,
    headers: requestHeaders(c, extraHeaders),
    body: method === "GET" || method === "HEAD" ? undefined : c.req.raw.body,
    redirect: "manual",
    // Abort the upstream call when the client goes away (long SSE streams included).
    signal: c.req.raw.signal,
    // @ts-expect-error Bun streams request bodies with duplex "half" like Node's undici
    duplex: "half",
  });
  const out = new Headers(upstream.headers);
  for (const h of DROP_RESPONSE) out.delete(h);
  // A body is re-framed on its way out, so its upstream length goes; a HEAD answer has no body to
  // count (src/middleware/head.ts), and keeps the length the upstream's GET would have, unless
  // fetch decoded the upstream's encoding (the length was of the encoded bytes).
  const length = upstream.headers.get("content-length");
  if (method === "HEAD" && length !== null && !upstream.headers.has("content-encoding")) out.set("content-length", length);
  return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers: out });
}

export const isWebSocketUpgrade = (c: Context) => c.req.header("upgrade")?.toLowerCase() === "websocket";

type BridgeData = {
  bridge: "warren-upstream";
  upstream: WebSocket;
  pending: Array<string | ArrayBuffer>;
  client: ServerWebSocket<BridgeData> | null;
  /** Frees the user's proxy slot (src/middleware/proxy-slots.ts) when the socket closes. */
  release?: () => void;
};

/** Close codes that may not be sent in a close frame (RFC 6455 §7.4.1) become a normal closure. */
const sendableCode = (code: number) => (code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code)) ? code : 1000);

/**
 * Bridges a WebSocket handshake to `target`. The upstream connection is opened first, so the
 * client is told the subprotocol the upstream chose (noVNC and websockify negotiate "binary"),
 * and an upstream that refuses is a 502 instead of a socket that closes at once. Needs the Bun
 * server (the `fetch(req, server)` second argument) and proxyWebSocket as its websocket handler.
 */
export async function bridgeWebSocket(c: Context<AppEnv>, target: URL, extraHeaders: Record<string, string> = {}): Promise<Response> {
  const server = c.env as Server<BridgeData> | undefined;
  if (!server || typeof server.upgrade !== "function") {
    throw new AppError("SERVICE_UNAVAILABLE", "WebSocket connections need Warren's own HTTP server");
  }
  const wsTarget = new URL(target);
  wsTarget.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  const protocols = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
  const headers = Object.fromEntries(requestHeaders(c, extraHeaders, DROP_WEBSOCKET));
  const options: Bun.WebSocketOptions = { headers, ...(protocols.length ? { protocols } : {}) };
  // Bun's WebSocket takes headers (the global type seen by tsc here only knows protocols).
  const BunWebSocket = WebSocket as unknown as new (url: string, options: Bun.WebSocketOptions) => WebSocket;
  const upstream = new BunWebSocket(wsTarget.href, options);
  upstream.binaryType = "arraybuffer";
  const data: BridgeData = { bridge: "warren-upstream", upstream, pending: [], client: null };
  upstream.onmessage = (event) => {
    const payload = event.data as string | ArrayBuffer;
    if (data.client) data.client.send(payload);
    else data.pending.push(payload);
  };
  const opened = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000);
    upstream.onopen = () => (clearTimeout(timer), resolve(true));
    upstream.onerror = () => (clearTimeout(timer), resolve(false));
    upstream.onclose = () => (clearTimeout(timer), resolve(false));
  });
  if (!opened) {
    upstream.close();
    return c.json({ error: { code: "SERVICE_UNAVAILABLE", message: "The sandbox's service refused the WebSocket connection", requestId: c.get("requestId") } }, 502);
  }
  upstream.onclose = (event) => data.client?.close(sendableCode(event.code), event.reason);
  upstream.onerror = () => data.client?.close(1011, "upstream error");
  const upgraded = server.upgrade(c.req.raw, {
    data,
    headers: upstream.protocol ? { "Sec-WebSocket-Protocol": upstream.protocol } : {},
  });
  if (!upgraded) {
    upstream.close();
    throw new AppError("VALIDATION_FAILED", "Not a valid WebSocket handshake", { fields: [{ location: "header", field: "upgrade", message: "not a valid WebSocket handshake", code: "websocket" }] });
  }
  // The bridge now holds the request's proxy slot (set by limitProxied) until it closes.
  data.release = c.get("proxySlot")?.keep();
  // Bun has taken the connection over; this response is never sent.
  return new Response(null);
}

/** The Bun server's websocket handler (src/index.ts): the client side of every bridge. */
export const proxyWebSocket: WebSocketHandler<BridgeData> = {
  open(ws) {
    ws.data.client = ws;
    for (const payload of ws.data.pending.splice(0)) ws.send(payload);
    // The upstream may have gone while the handshake finished.
    if (ws.data.upstream.readyState >= WebSocket.CLOSING) ws.close(1000, "upstream closed");
  },
  message(ws, message) {
    if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.send(message);
  },
  close(ws, code, reason) {
    ws.data.client = null;
    ws.data.upstream.close(sendableCode(code), reason);
    ws.data.release?.();
  },
};
