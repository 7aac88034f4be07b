// Reading a burst of messages costs one frame, and the marker still follows within about a second.
const SEND_AFTER_MS = 1000;

/** Move the server's read marker up to the newest message shown, while the page is visible. */
export class ReadMarker {
  #sent = 0;
  #timer = null;

  /** send(frame) returns false when offline; highestSeq() returns the newest seq shown, or null; signal ends it. */
  constructor({ send, highestSeq, signal }) {
    this.send = send;
    this.highestSeq = highestSeq;
    this.signal = signal;
    document.addEventListener("visibilitychange", () => this.flush(), { signal });
    // Leaving for another page (a link, a reload) must not drop the last second's reads.
    window.addEventListener("pagehide", () => this.flush(), { signal });
  }

  /** Note where the server's marker is; it never moves back, so neither does this. */
  known(seq) {
    if (Number.isInteger(seq) && seq > this.#sent) this.#sent = seq;
  }

  /** Note that messages were shown: send the marker soon, once for the whole burst. */
  shown() {
    if (this.#timer !== null || this.signal?.aborted) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush();
    }, SEND_AFTER_MS);
  }

  /** Send the marker now if the page is visible and there is something new. */
  flush() {
    if (document.visibilityState !== "visible") return;
    const seq = this.highestSeq();
    if (seq === null || seq <= this.#sent) return;
    if (this.send({ type: "read", seq })) this.#sent = seq;
  }
}
