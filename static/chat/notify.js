import { messageUrl, roomUrl } from "./urls.js";

// Enough of the body to recognise the message; the rest is one click away.
const EXCERPT_CHARS = 100;
// Older notices make way, so a burst of mentions cannot cover the page.
const MAX_TOASTS = 3;
// The server keeps this slug prefix for direct-message rooms, whose slugs mean nothing to people.
const DIRECT_PREFIX = "dm-";

// Message ids already notified: a mention in a direct message comes as both reasons.
const REMEMBERED = 50;

/** Tell the user of a mention or a direct message: a notice on the page, and a system notification when allowed. */
export class Notifier {
  #notified = [];

  /** currentRoom() returns the slug of the room the page shows, or undefined; currentThread() the thread's parent id. */
  constructor({ region, enableButton, currentRoom, currentThread = () => null }) {
    this.region = region;
    this.currentRoom = currentRoom;
    this.currentThread = currentThread;
    this.#offerPermission(enableButton);
  }

  /** Show a notification frame, unless it is about the room the user is looking at. */
  notify({ room, reason, message }) {
    if (typeof room !== "string" || !message || this.#notified.includes(message.id)) return;
    const visible = document.visibilityState === "visible";
    // A reply is news in the room shown too, unless its thread is open.
    const shown = reason === "thread" ? message.parent === this.currentThread() : room === this.currentRoom();
    if (shown && room === this.currentRoom() && visible) return;
    this.#notified = [...this.#notified.slice(1 - REMEMBERED), message.id];
    const title = {
      direct: `${message.author} sent you a direct message`,
      thread: `${message.author} replied in a thread in ${roomLabel(room)}`,
    }[reason] ?? `${message.author} mentioned you in ${roomLabel(room)}`;
    const body = excerpt(String(message.body ?? ""));
    // A reply opens at itself, in its thread; other notices at the room.
    const href = reason === "thread" ? messageUrl(room, message.seq) : roomUrl(room);
    this.#toast(title, body, href);
    if (!visible && "Notification" in window && Notification.permission === "granted") {
      // The tag lets the browser merge the copies that every open tab of the user receives.
      const notification = new Notification(title, { body, tag: `chat-message-${message.id}` });
      notification.addEventListener("click", () => {
        window.focus();
        location.assign(href);
      });
    }
  }

  /** Tell the user that someone added them to a room (a room_added with added_by); joining themselves needs no word. */
  added({ room, added_by: addedBy }) {
    if (typeof addedBy !== "string" || typeof room?.room !== "string") return;
    this.#toast(`${addedBy} added you to ${room.title}`, "", roomUrl(room.room));
  }

  #toast(title, body, href) {
    const toast = document.createElement("div");
    toast.className = "toast";
    const link = document.createElement("a");
    link.className = "toast__title";
    link.href = href;
    link.textContent = title;
    const text = document.createElement("p");
    text.className = "toast__body";
    text.textContent = body;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close button button--small button--quiet";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => toast.remove());
    toast.append(link, text, close);
    this.region.append(toast);
    while (this.region.children.length > MAX_TOASTS) this.region.firstElementChild.remove();
  }

  #offerPermission(button) {
    if (!("Notification" in window) || Notification.permission !== "default") return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await Notification.requestPermission();
      button.hidden = Notification.permission !== "default";
    });
  }
}

function roomLabel(slug) {
  return slug.startsWith(DIRECT_PREFIX) ? "a direct message" : `#${slug}`;
}

function excerpt(body) {
  const chars = Array.from(body.replace(/\s+/gu, " ").trim());
  return chars.length > EXCERPT_CHARS ? `${chars.slice(0, EXCERPT_CHARS).join("")}…` : chars.join("");
}
