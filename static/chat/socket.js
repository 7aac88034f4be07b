// The first retry is quick because most drops are blips (a deploy, a Wi-Fi hand-over).
const FIRST_RETRY_MS = 500;
const BACKOFF_FACTOR = 2;
// Capped so that when a long outage ends, the page is back within seconds.
const MAX_RETRY_MS = 15_000;
// Random extra delay, as a share of the delay, so pages dropped together do not return together.
const JITTER_RATIO = 0.3;
// Close codes after which retrying is pointless: the server ended the user's
// session (logout elsewhere, expiry, deactivation) or removed them from a private room.
const FINAL_CODES = new Set([4401, 4403]);

/** A chat websocket that reopens itself after a drop, resuming after the last message seen. */
export class ChatSocket {
  #socket = null;
  #ready = false;
  #attempt = 0;
  #retryTimer = null;
  #closed = false;

  /**
   * onFrame(frame) gets every decoded frame; onStatus(state) gets
   * "connecting" | "connected" | "reconnecting" | "offline";
   * resumeSeq() returns the seq to resume after, or 0 for a fresh start;
   * onRemoved(code) runs when the server closed for good because the user lost access.
   */
  constructor(path, { onFrame, onStatus, resumeSeq, onRemoved }) {
    this.path = path;
    this.onRemoved = onRemoved;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.resumeSeq = resumeSeq;
    // The seq this connection resumed after, or null when it started fresh.
    this.resumedAfter = null;
    window.addEventListener("offline", () => {
      if (!this.#closed) this.onStatus("offline");
    });
    window.addEventListener("online", () => this.#online());
  }

  open() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#closed = false;
    this.#ready = false;
    const after = this.resumeSeq();
    this.resumedAfter = after > 0 ? after : null;
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
  }

  /** Send a frame; return false when there is no welcomed connection to send it on. */
  send(frame) {
    if (!this.#ready || this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(frame));
    return true;
  }

  /** Close for good: no reconnecting afterwards. */
  close() {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#socket?.close();
    this.#socket = null;
  }

  #url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(this.path, `${scheme}//${location.host}`);
    if (this.resumedAfter !== null) url.searchParams.set("after", String(this.resumedAfter));
    return url.href;
  }

  #receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // Not ours to crash on: the server only sends JSON.
    }
    if (frame === null || typeof frame !== "object") return;
    if (frame.type === "welcome") {
      // Only a welcome proves the server is really back, so backoff resets here, not on open.
      this.#ready = true;
      this.#attempt = 0;
      this.onStatus(navigator.onLine ? "connected" : "offline");
    }
    this.onFrame(frame);
  }

  #dropped(code) {
    this.#socket = null;
    this.#ready = false;
    if (this.#closed) return;
    if (FINAL_CODES.has(code)) {
      this.#closed = true;
      this.onStatus("closed");
      this.onRemoved?.(code);
      return;
    }
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * BACKOFF_FACTOR ** this.#attempt);
    const delay = base + Math.random() * base * JITTER_RATIO;
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
