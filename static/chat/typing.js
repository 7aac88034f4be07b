// The protocol asks pages to say "typing" at most this often.
const SEND_EVERY_MS = 2000;
// A little more than two sends apart, so one late frame does not make the indicator flicker.
const SHOW_FOR_MS = 4000;

/** Send a typing frame while the user types in the textarea, at most every SEND_EVERY_MS. */
export function setupTypingSender(textarea, send) {
  let lastSent = -Infinity;
  // "input" fires on typing, not when Enter sends (that key is cancelled) or a script sets the value.
  textarea.addEventListener("input", () => {
    const now = Date.now();
    if (!textarea.value.trim() || now - lastSent < SEND_EVERY_MS) return;
    if (send({ type: "typing" })) lastSent = now;
  });
}

/** Show who else is typing, for SHOW_FOR_MS after each of their typing frames. */
export class TypingIndicator {
  #timers = new Map(); // username -> timeout

  constructor(element) {
    this.element = element;
  }

  typing(user) {
    if (typeof user !== "string") return;
    clearTimeout(this.#timers.get(user));
    this.#timers.set(user, setTimeout(() => this.stopped(user), SHOW_FOR_MS));
    this.#render();
  }

  /** Forget a user's typing, for example when their message arrives. */
  stopped(user) {
    if (!this.#timers.has(user)) return;
    clearTimeout(this.#timers.get(user));
    this.#timers.delete(user);
    this.#render();
  }

  clear() {
    for (const user of [...this.#timers.keys()]) this.stopped(user);
  }

  #render() {
    const text = describe([...this.#timers.keys()]);
    // The element is a live region: only touch it when the words change.
    if (this.element.textContent !== text) this.element.textContent = text;
  }
}

function describe(users) {
  if (users.length === 0) return "";
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return "Several people are typing…";
}
