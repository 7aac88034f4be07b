// Long enough to read a sentence, short enough not to linger over the conversation.
const NOTICE_MS = 8000;

/** A one-line notice in an element that hides itself again, unless it must stay. */
export class Notice {
  #timer = null;

  constructor(element) {
    this.element = element;
  }

  show(text, { stay = false } = {}) {
    clearTimeout(this.#timer);
    this.element.textContent = text;
    this.element.hidden = false;
    if (!stay) {
      this.#timer = setTimeout(() => {
        this.element.hidden = true;
      }, NOTICE_MS);
    }
  }
}
