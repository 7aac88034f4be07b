// Start loading a little before the very top, so scrolling back feels continuous.
const TOP_THRESHOLD_PX = 80;
const OLDER_PAGE_SIZE = 50;

const lastSeq = (messages) => messages.at(-1)?.seq;

/**
 * History: older pages on demand, and catching up after a reconnect or a gap in the live messages.
 * Also keeps resumeSeq, the seq up to which the page has every message,
 * which is what a reconnect resumes after and what a catch-up asks after.
 */
export class History {
  // What each unanswered history request asked for ("older" | "newer"), in the order sent:
  // answers carry no request id, but one socket answers in order.
  #requests = [];
  #hasOlder = false;
  #catchingUp = false;
  // The highest seq shown when the catch-up began: once the server has nothing more after resumeSeq,
  // every seq up to it is either shown or deleted (history skips deleted ones), so the range is healed.
  #catchUpTo = 0;

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
      // In this mode has_more means newer messages are still missing. Without it, the page has
      // everything up to the newest it shows: a seq it knew of but was not sent was deleted.
      if (frame.has_more && batch.length) this.#catchUp();
      else this.resumeSeq = Math.max(this.resumeSeq, this.messages.highestSeq ?? 0);
    } else {
      this.#hasOlder = Boolean(frame.has_more);
      this.messages.scrollToBottom();
    }
    this.#render();
  }

  /** Note a live message (already shown); one that jumps past resumeSeq + 1 means the layer dropped some. */
  live() {
    // During a catch-up, its last answer checks again.
    if (!this.#catchingUp) this.#heal();
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
      this.resumeSeq = Math.max(this.resumeSeq, lastSeq(batch) ?? 0);
      if (frame.has_more && batch.length) {
        this.#request("newer", { after: this.resumeSeq });
      } else {
        this.#catchingUp = false;
        this.resumeSeq = Math.max(this.resumeSeq, this.#catchUpTo);
        this.#heal();
      }
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
    const kind = this.#requests.shift();
    if (kind === undefined) return false;
    // The next live message tries again.
    if (kind === "newer") this.#catchingUp = false;
    this.#render();
    return true;
  }

  loadOlder() {
    if (!this.#hasOlder || this.#requests.includes("older") || this.messages.lowestSeq === null) return;
    this.#request("older", { before: this.messages.lowestSeq, limit: OLDER_PAGE_SIZE });
  }

  /** Move resumeSeq over the seqs the page has; fetch what is missing below the newest shown. */
  #heal() {
    while (this.messages.has(this.resumeSeq + 1)) this.resumeSeq += 1;
    if (this.messages.highestSeq !== null && this.messages.highestSeq > this.resumeSeq) this.#catchUp();
  }

  #catchUp() {
    // After resumeSeq, not the newest shown: live ones may sit past a gap.
    this.#catchingUp = true;
    this.#catchUpTo = this.messages.highestSeq ?? 0;
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
