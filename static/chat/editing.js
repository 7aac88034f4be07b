/**
 * Editing a message in the composer: the message's text replaces the draft,
 * which comes back when the edit is saved or cancelled.
 * Up arrow in an empty composer edits the user's last message; Escape cancels.
 */
export class Editor {
  #target = null;
  #draft = "";

  /** lastOwn() returns the user's newest message, or undefined. */
  constructor({ form, textarea, banner, cancelButton, lastOwn }) {
    this.form = form;
    this.textarea = textarea;
    this.banner = banner;
    cancelButton.addEventListener("click", () => this.cancel());
    textarea.addEventListener("keydown", (event) => {
      if (event.isComposing) return;
      if (event.key === "Escape" && this.#target) {
        event.preventDefault();
        this.cancel();
      } else if (event.key === "ArrowUp" && !this.#target && textarea.value === "") {
        const last = lastOwn();
        if (!last) return;
        event.preventDefault();
        this.start(last);
      }
    });
  }

  /** Return the message being edited, or null. */
  get target() {
    return this.#target;
  }

  start(message) {
    if (!this.#target) this.#draft = this.textarea.value;
    this.#target = message;
    this.textarea.value = message.body;
    this.banner.hidden = false;
    this.form.classList.add("composer--editing");
    this.textarea.focus();
    this.textarea.setSelectionRange(message.body.length, message.body.length);
  }

  /** Stop editing and put the draft back. */
  cancel() {
    if (!this.#target) return;
    this.#target = null;
    this.textarea.value = this.#draft;
    this.#draft = "";
    this.banner.hidden = true;
    this.form.classList.remove("composer--editing");
    this.textarea.focus();
  }
}
