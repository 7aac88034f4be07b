import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, pongTimeout, retryDelay } from "./backoff.js";

// Close codes after which retrying is pointless (docs/protocol.md, Closing): a malformed URL, no login or an
// ended session, too many sockets (4403 and 4404 close only version 1 sockets). Any other close is a drop: back off.
export const FINAL_CODES = new Set([4400, 4401, 4403, 4404, 4429]);

/** The tab's one chat connection (protocol version 2): reopens itself after a drop; views resubscribe on each hello. */
export class ChatSocket {
  #socket = null;
  #ready = false;
  #attempt = 0;
  #retryTimer = null;
  #closed = false;
  #pinger = null;
  // Runs out when the handshake hangs, or when a ping stays unanswered: either way the connection is dead.
  #deadline = null;
  #awaitingPong = false;
  // The last error frame of this connection: the server explains a final close with one.
  #lastError = null;
  #lastRequestId = 0;

  /**
   * onFrame(frame) gets every decoded frame but pong; onStatus(state) gets
   * "connecting" | "connected" | "reconnecting" | "offline" | "closed";
   * onFinalClose(code, detail) runs when the server closed for good (FINAL_CODES), with the detail of its last error frame;
   * heartbeatMs is the time between pings while connected.
   */
  constructor(path, { onFrame, onStatus, onFinalClose, heartbeatMs = HEARTBEAT_MS }) {
    this.path = path;
    this.onFinalClose = onFinalClose;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.heartbeatMs = heartbeatMs > 0 ? heartbeatMs : HEARTBEAT_MS;
    window.addEventListener("offline", () => {
      if (!this.#closed) this.onStatus("offline");
    });
    window.addEventListener("online", () => this.#online());
  }

  /** Return whether the server has said hello on the current connection. */
  get ready() {
    return this.#ready;
  }

  open() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#closed = false;
    this.#ready = false;
    this.#lastError = null;
    if (this.#attempt === 0) this.onStatus(navigator.onLine ? "connecting" : "offline");

    const socket = new WebSocket(this.#url());
    this.#socket = socket;
    socket.addEventListener("message", (event) => {
      if (socket === this.#socket) this.#receive(event.data);
    });
    // "error" is always followed by "close", so close alone handles failures.
    socket.addEventListener("close", (event) => {
      if (socket === this.#socket) this.#dropped(event.code);
    });
    this.#stopHeartbeat();
    this.#deadline = setTimeout(() => this.#abandon(), HANDSHAKE_TIMEOUT_MS);
  }

  /** Send a frame; return false when there is no connection that said hello to send it on. */
  send(frame) {
    if (!this.#ready || this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  /** Send a frame with a new request_id, which its answer or error echoes; return the id, or null when not sent. */
  request(frame) {
    const id = this.#lastRequestId + 1;
    if (!this.send({ ...frame, request_id: id })) return null;
    this.#lastRequestId = id;
    return id;
  }

  /** Close for good: no reconnecting afterwards. */
  close() {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stopHeartbeat();
    this.#socket?.close();
    this.#socket = null;
  }

  #url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new URL(this.path, `${scheme}//${location.host}`).href;
  }

  #receive(data) {
    // Any frame at all proves the server alive, so that a busy room needs no pongs.
    if (this.#awaitingPong) {
      this.#awaitingPong = false;
      clearTimeout(this.#deadline);
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // Not ours to crash on: the server only sends JSON.
    }
    if (frame === null || typeof frame !== "object" || frame.type === "pong") return;
    if (frame.type === "hello") {
      // Only a hello proves the server is really back, so backoff resets here, not on open.
      this.#ready = true;
      this.#attempt = 0;
      this.#startHeartbeat();
      this.onStatus(navigator.onLine ? "connected" : "offline");
    } else if (frame.type === "error") {
      this.#lastError = frame;
    }
    this.onFrame(frame);
  }

  #startHeartbeat() {
    this.#stopHeartbeat();
    this.#pinger = setInterval(() => this.#ping(), this.heartbeatMs);
  }

  #stopHeartbeat() {
    clearInterval(this.#pinger);
    clearTimeout(this.#deadline);
    this.#pinger = null;
    this.#awaitingPong = false;
  }

  #ping() {
    // The deadline runs from the first unanswered ping: a background tab whose timers the browser slows pings late, not never.
    if (!this.#awaitingPong) {
      this.#awaitingPong = true;
      this.#deadline = setTimeout(() => this.#abandon(), pongTimeout(this.heartbeatMs));
    }
    this.send({ type: "ping" });
  }

  #abandon() {
    // A half-open connection may never fire "close": let go of it and reconnect as for a drop.
    const socket = this.#socket;
    if (socket === null) return;
    this.#socket = null;
    socket.close();
    this.#dropped(null);
  }

  #dropped(code) {
    this.#socket = null;
    this.#ready = false;
    this.#stopHeartbeat();
    if (this.#closed) return;
    if (FINAL_CODES.has(code)) {
      this.#closed = true;
      this.onStatus("closed");
      this.onFinalClose?.(code, this.#lastError?.detail);
      return;
    }
    const delay = retryDelay(this.#attempt);
    this.#attempt += 1;
    this.onStatus(navigator.onLine ? "reconnecting" : "offline");
    this.#retryTimer = setTimeout(() => this.open(), delay);
  }

  #online() {
    if (this.#closed) return;
    if (this.#ready) {
      this.onStatus("connected");
    } else if (this.#retryTimer !== null) {
      // The network is back: no reason to sit out the rest of a long backoff.
      this.#attempt = 0;
      this.open();
    } else {
      this.onStatus(this.#attempt === 0 ? "connecting" : "reconnecting");
    }
  }
}
