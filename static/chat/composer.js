/** Wire the composer form: Enter sends, Shift+Enter starts a new line; `allowEmpty()`: files go without text. */
export function setupComposer(form, textarea, onSend, allowEmpty = () => false) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = textarea.value;
    if (!body.trim() && !allowEmpty()) return;
    // Cleared before onSend, so that onSend may put other text in (a saved draft, or the body back).
    textarea.value = "";
    onSend(body);
    textarea.focus();
  });

  textarea.addEventListener("keydown", (event) => {
    // While an input method is composing, Enter picks a character; it must not send.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    form.requestSubmit();
  });
}

/** Turn the whole composer off for good, for a room the user can no longer write in. */
export function disableComposer(form) {
  for (const control of form.elements) control.disabled = true;
}
