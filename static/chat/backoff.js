// Pure timing rules of the chat socket, kept apart from the page so that node can test them.

// The first retry is quick because most drops are blips (a deploy, a Wi-Fi hand-over).
export const FIRST_RETRY_MS = 500;
// Capped so that when a long outage ends, the page is back within seconds.
export const MAX_RETRY_MS = 15_000;
// Under the idle timeouts of common proxies and load balancers (often 30 or 60 s), so that none cuts a quiet socket.
export const HEARTBEAT_MS = 25_000;
// The longest a page goes without hearing from a live server, in heartbeat intervals: two pings missed, plus
// room for a slow answer (55 s at 25 s).
export const HEARTBEAT_TIMEOUT_FACTOR = 2.2;
// Twice daphne's own 5 s connect timeout: a handshake still unanswered by then hangs (a frozen server, a black hole).
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Return how long to wait before reconnect attempt `attempt` (0 for the first): "full jitter", a uniform
 * draw below the exponential delay, so that pages dropped together come back spread out, not in waves.
 */
export function retryDelay(attempt, random = Math.random) {
  const cap = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempt));
  return random() * cap;
}

/** Return how long after the first unanswered ping the connection counts as dead: by then the next ping went unanswered too. */
export function pongTimeout(heartbeatMs) {
  return heartbeatMs * (HEARTBEAT_TIMEOUT_FACTOR - 1);
}
