/**
 * The change number (cseq, docs/protocol.md "The change feed") a room view is current to: every change up to it
 * has been applied. Live changes past a hole (one the channel layer dropped) are remembered until the hole is filled.
 */
export class ChangeCursor {
  // Changes applied above the cursor, past a hole.
  #above = new Set();

  constructor(cseq = 0) {
    this.cseq = cseq;
  }

  /** Start again from a fresh view that is current to cseq. */
  reset(cseq) {
    this.cseq = Number.isInteger(cseq) ? cseq : 0;
    this.#above.clear();
  }

  /** Note a live change as applied; return whether a hole now lies below some applied change. */
  applied(cseq) {
    if (Number.isInteger(cseq) && cseq > this.cseq) this.#above.add(cseq);
    return this.#close();
  }

  /** Note a page of changes (subscribed or changes) that makes the view current to cseq; return whether a hole is left. */
  caughtUp(cseq) {
    if (Number.isInteger(cseq) && cseq > this.cseq) this.cseq = cseq;
    return this.#close();
  }

  /** Return whether some applied change lies past a hole. */
  get hole() {
    return this.#above.size > 0;
  }

  #close() {
    for (const cseq of this.#above) if (cseq <= this.cseq) this.#above.delete(cseq);
    while (this.#above.delete(this.cseq + 1)) this.cseq += 1;
    return this.#above.size > 0;
  }
}
