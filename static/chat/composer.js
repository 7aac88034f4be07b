/** Wire the composer form: Enter sends, Shift+Enter starts a new line. */
export function setupComposer(form, textarea, onSend) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = textarea.value;
    if (!body.trim()) return;
    onSend(body);
    textarea.value = "";
    textarea.focus();
  });

  textarea.addEventListener("keydown", (event) => {
    // While an input method is composing, Enter picks a character; it must not send.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    form.requestSubmit();
  });
}
