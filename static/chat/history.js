// Start loading a little before the very top, so scrolling back feels continuous.
const TOP_THRESHOLD_PX = 80;
const OLDER_PAGE_SIZE = 50;

const lastSeq = (messages) => messages.at(-1)?.seq;

/**
 * History: older pages on demand, and catching up after a reconnect.
 * Also keeps resumeSeq, the seq up to which the page has every message,
 * which is what a reconnect resumes after.
 */
export class History {
  // What each unanswered history request asked for ("older" | "newer"), in the order sent:
  // answers carry no request id, but one socket answers in order.
  #requests = [];
  #hasOlder = false;
  #catchingUp = false;

  constructor({ messages, socket, button, scroller }) {
    this.messages = messages;
    this.socket = socket;
    this.button = button;
    this.resumeSeq = 0;
    button.addEventListener("click", () => this.loadOlder());
    scroller.addEventListener(
      "scroll",
      () => {
        if (scroller.scrollTop < TOP_THRESHOLD_PX) this.loadOlder();
      },
      { passive: true },
    );
  }

  /** Apply a welcome: resumed means the socket opened with ?after=. */
  welcome(frame, resumed) {
    // Requests sent on the previous connection will never be answered.
    this.#requests = [];
    this.#catchingUp = false;
    const batch = Array.isArray(frame.messages) ? frame.messages : [];
    this.messages.add(batch);
    this.resumeSeq = lastSeq(batch) ?? this.resumeSeq;
    if (resumed) {
      // In this mode has_more means newer messages are still missing.
      if (frame.has_more && batch.length) this.#catchUp();
    } else {
      this.#hasOlder = Boolean(frame.has_more);
      this.messages.scrollToBottom();
    }
    this.#render();
  }

  /** Note a live message; during a catch-up it may be ahead of a gap, so it cannot move resumeSeq. */
  live(message) {
    if (!this.#catchingUp && message.seq > this.resumeSeq) this.resumeSeq = message.seq;
  }

  /** Apply the answer to the oldest unanswered history request. */
  answer(frame) {
    const kind = this.#requests.shift();
    const batch = Array.isArray(frame.messages) ? frame.messages : [];
    if (kind === "older") {
      this.messages.add(batch, { older: true });
      this.#hasOlder = Boolean(frame.has_more);
    } else if (kind === "newer") {
      this.messages.add(batch);
      this.resumeSeq = lastSeq(batch) ?? this.resumeSeq;
      if (frame.has_more && batch.length) this.#catchUp();
      else this.#catchingUp = false;
    }
    this.#render();
  }

  /** Return whether a history request is waiting for its answer. */
  get waiting() {
    return this.#requests.length > 0;
  }

  /** Take an error as the refusal of the oldest history request; return whether one was waiting. */
  refused() {
    // The caller decides which errors answer a history request (see room.js).
    // A refused catch-up leaves resumeSeq behind the gap, so the next reconnect fills it.
    if (this.#requests.shift() === undefined) return false;
    this.#render();
    return true;
  }

  loadOlder() {
    if (!this.#hasOlder || this.#requests.includes("older") || this.messages.lowestSeq === null) return;
    this.#request("older", { before: this.messages.lowestSeq, limit: OLDER_PAGE_SIZE });
  }

  #catchUp() {
    // After the last message of the batch, not the newest shown: live ones may sit past a gap.
    this.#catchingUp = true;
    this.#request("newer", { after: this.resumeSeq });
  }

  #request(kind, query) {
    if (this.socket.send({ type: "history", ...query })) this.#requests.push(kind);
    this.#render();
  }

  #render() {
    const loading = this.#requests.includes("older");
    this.button.hidden = !this.#hasOlder;
    this.button.disabled = loading;
    this.button.textContent = loading ? "Loading older messages…" : "Load older messages";
  }
}
