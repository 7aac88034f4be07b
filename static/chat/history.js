import { ChangeCursor } from "./feed.js";

// Start loading a little before the very top, so scrolling back feels continuous.
const TOP_THRESHOLD_PX = 80;
const OLDER_PAGE_SIZE = 50;
// A permalink loads older pages of the largest size until its message is in, at most this many messages back.
const REACH_PAGE_SIZE = 100;
export const REACH_MAX = 5000;

/**
 * A room view's history: older pages on demand (by seq), and catching up on the change feed (by cseq) after a
 * resume that did not fit one frame or a hole in the live changes. `cursor` is the cseq the view is current to,
 * which a resubscribe resumes after.
 */
export class History {
  // The request_id of the page back and of the catch-up in flight, or null.
  #older = null;
  #catchUp = null;
  #hasOlder = false;
  #reach = null; // { seq, onReached }: a message to load older pages for, until it is in

  /** request(frame) sends a room frame with a new request_id and returns it (null when offline); apply(change) shows one change. */
  constructor({ messages, request, apply, button, scroller }) {
    this.messages = messages;
    this.request = request;
    this.apply = apply;
    this.button = button;
    this.cursor = new ChangeCursor();
    button.addEventListener("click", () => this.loadOlder());
    scroller.addEventListener(
      "scroll",
      () => {
        if (scroller.scrollTop < TOP_THRESHOLD_PX) this.loadOlder();
      },
      { passive: true },
    );
  }

  /** Apply a subscribed frame: a fresh view (the latest messages) or a resume (the changes since the cursor). */
  subscribed(frame) {
    // Requests sent on an earlier subscription will never be answered.
    this.#older = null;
    this.#catchUp = null;
    if (frame.resumed) {
      this.#changes(frame);
    } else {
      this.messages.add(Array.isArray(frame.messages) ? frame.messages : []);
      this.cursor.reset(frame.cseq);
      this.#hasOlder = Boolean(frame.has_more);
      this.messages.scrollToBottom();
    }
    this.#render();
    this.#reachOn();
  }

  /** Load older pages until the message `seq` is in (or REACH_MAX back), then call onReached(seq). */
  reach(seq, onReached) {
    this.#reach = { seq, onReached, from: this.messages.highestSeq };
    if (this.messages.lowestSeq !== null) this.#reachOn();
  }

  #reachOn() {
    const reach = this.#reach;
    if (!reach || this.#older !== null) return;
    const lowest = this.messages.lowestSeq;
    const done = lowest === null || lowest <= reach.seq || !this.#hasOlder;
    if (done || (reach.from ?? lowest) - lowest >= REACH_MAX) {
      this.#reach = null;
      reach.onReached(reach.seq);
      return;
    }
    this.#older = this.request({ type: "history", before: lowest, limit: REACH_PAGE_SIZE });
    this.#render();
  }

  /** Note a live change (already applied); a hole below it asks for the changes in between. */
  live(cseq) {
    if (this.cursor.applied(cseq)) this.#requestChanges();
  }

  /** Apply the answer to a request; return whether it was one of this history's. */
  answer(frame) {
    if (frame.type === "history" && frame.request_id === this.#older) {
      this.#older = null;
      this.messages.add(Array.isArray(frame.messages) ? frame.messages : [], { older: true });
      this.#hasOlder = Boolean(frame.has_more);
      this.#render();
      this.#reachOn();
      return true;
    } else if (frame.type === "changes" && frame.request_id === this.#catchUp) {
      this.#catchUp = null;
      this.#changes(frame);
    } else {
      return false;
    }
    this.#render();
    return true;
  }

  /** Take an error as the refusal of one of this history's requests; return whether it was. */
  refused(frame) {
    if (frame.request_id == null) return false;
    if (frame.request_id === this.#older) this.#older = null;
    else if (frame.request_id === this.#catchUp) this.#catchUp = null; // The next live change or resume tries again.
    else return false;
    this.#render();
    return true;
  }

  loadOlder() {
    if (!this.#hasOlder || this.#older !== null || this.messages.lowestSeq === null) return;
    this.#older = this.request({ type: "history", before: this.messages.lowestSeq, limit: OLDER_PAGE_SIZE });
    this.#render();
  }

  #changes(frame) {
    for (const change of Array.isArray(frame.changes) ? frame.changes : []) this.apply(change);
    const hole = this.cursor.caughtUp(frame.cseq);
    if (frame.has_more || hole) this.#requestChanges();
  }

  #requestChanges() {
    if (this.#catchUp !== null) return; // Its answer checks again.
    this.#catchUp = this.request({ type: "changes", after: this.cursor.cseq });
  }

  #render() {
    const loading = this.#older !== null;
    this.button.hidden = !this.#hasOlder;
    this.button.disabled = loading;
    this.button.textContent = loading ? "Loading older messages…" : "Load older messages";
  }
}
