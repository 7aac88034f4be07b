import { dayKey, formatDay, formatFull, formatTime } from "./format.js";
import { attachmentsElement } from "./files.js";
import { previewsElement } from "./previews.js";
import { reactionsElement } from "./reactions.js";
import { renderRichText } from "./richtext.js";
import { directUrl } from "./urls.js";

// Within this distance of the bottom the reader is following along, so new messages scroll into view.
const NEAR_BOTTOM_PX = 120;
// One author's messages this close together read as one block, under one name and time.
const GROUP_WITHIN_MS = 5 * 60 * 1000;

/** Return a new client id for a message; the server uses it to drop repeats. */
export function newClientId() {
  // randomUUID exists only on secure origins (https, localhost); getRandomValues works everywhere.
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The message list: confirmed messages in seq order, then the user's own unconfirmed ones. */
export class MessageList {
  // seq -> { message, element }, or null once deleted: a deleted seq stays known so it is never shown again.
  #bySeq = new Map();
  #local = new Map(); // client_id -> { clientId, body, element, failed }, in the order written
  #divider = null;
  #unread = null; // { after, upTo }: the seqs the "New messages" divider stands before
  #dayDividers = new Map(); // day key -> its heading element

  /**
   * onEdit(message) and onDelete(message) run when the user picks those actions on their own message;
   * onReact(message, emoji, on) when they toggle a reaction, onPickReaction(message, button) when they ask to add one;
   * onReport(message) when they report someone else's message to staff;
   * onRemovePreview(message, url) when the author removes a link's preview.
   */
  constructor(list, scroller, {
    username, isStaff = false, permalink = null, onRetry, onEdit, onDelete, onReact, onPickReaction, onThread = null,
    onReport = null, onRemovePreview = null,
  }) {
    this.list = list;
    this.scroller = scroller;
    this.username = username;
    this.isStaff = isStaff;
    this.onRetry = onRetry;
    this.onEdit = onEdit;
    this.onDelete = onDelete;
    this.onReact = onReact;
    this.onPickReaction = onPickReaction;
    this.onRemovePreview = onRemovePreview;
    // onThread(message) opens a message's thread; without it (in a thread's own list) nothing offers one.
    this.onThread = onThread;
    this.onReport = onReport;
    this.permalink = permalink;
    this.lowestSeq = null;
    this.highestSeq = null;
  }

  /** Insert confirmed messages in any order; a seq already shown is ignored. */
  add(messages, { older = false } = {}) {
    const following = this.#nearBottom();
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    for (const message of messages) this.#insert(message);
    this.#decorate();
    // Older messages go above the reader's eyes; keep what they were reading where it was.
    if (older) this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    else if (following) this.scrollToBottom();
  }

  /** Replace the body of a message that was edited. */
  edit(message) {
    const entry = this.#bySeq.get(message?.seq);
    if (!entry) return;
    entry.message = message;
    const element = this.#render(message);
    entry.element.replaceWith(element);
    entry.element = element;
    this.#decorate();
  }

  /** Scroll to a message and mark it as the one a permalink opened; return false when it is not shown. */
  focus(seq) {
    const element = this.#bySeq.get(seq)?.element;
    if (!element) return false;
    this.list.querySelector(".message--focused")?.classList.remove("message--focused");
    element.classList.add("message--focused");
    element.scrollIntoView({ block: "center" });
    return true;
  }

  /** Take a deleted message off the list, keeping its seq known. */
  remove(seq) {
    if (!Number.isInteger(seq)) return;
    this.#bySeq.get(seq)?.element.remove();
    this.#bySeq.set(seq, null);
    if (this.lowestSeq === null || seq < this.lowestSeq) this.lowestSeq = seq;
    if (this.highestSeq === null || seq > this.highestSeq) this.highestSeq = seq;
    this.#decorate();
  }

  /**
   * Apply a change of the feed, live or replayed: {type: "message", message} adds a message or replaces a copy with
   * a lower cseq; {type: "message_deleted", seq} takes it off. A message older than the pages loaded is left for a
   * page back, which brings it as it is now.
   */
  apply(change) {
    if (change?.type === "message_deleted") {
      this.remove(change.seq);
      return;
    }
    const message = change?.message;
    if (!Number.isInteger(message?.seq)) return;
    const entry = this.#bySeq.get(message.seq);
    if (entry === null) return; // Deleted: a deletion is final.
    if (entry) {
      if ((message.cseq ?? 0) > (entry.message.cseq ?? 0)) this.edit(message);
    } else if (this.lowestSeq === null || message.seq > this.lowestSeq) {
      this.add([message]);
    }
  }

  /** Return whether the page knows this seq: shown, or deleted while the page watched. */
  has(seq) {
    return this.#bySeq.has(seq);
  }

  /** Return the shown message with this id, or undefined. */
  byId(id) {
    for (const entry of this.#bySeq.values()) if (entry?.message.id === id) return entry.message;
    return undefined;
  }

  /** Return the message with this seq, or undefined when it is not shown. */
  get(seq) {
    return this.#bySeq.get(seq)?.message;
  }

  /** Return the user's own newest confirmed message, or undefined. */
  lastOwn() {
    let last;
    for (const entry of this.#bySeq.values()) {
      if (entry?.message.author === this.username && (!last || entry.message.seq > last.seq)) last = entry.message;
    }
    return last;
  }

  /** Draw the "New messages" divider before the first shown message with after < seq <= upTo. */
  markUnread(after, upTo) {
    const following = this.#nearBottom();
    this.#unread = { after, upTo };
    this.#decorate();
    if (!following || !this.#divider?.isConnected) return;
    this.scrollToBottom();
    // More unread than fits: start the reader at the first one instead.
    const above = this.#divider.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
    if (above < 0) this.scroller.scrollTop += above;
  }

  /** Show a message the user just wrote, before the server has confirmed it. */
  addLocal(clientId, body, attachments = []) {
    const element = this.#render({ author: this.username, body, created_at: new Date().toISOString() }, false);
    element.classList.add("message--pending");
    element.dataset.clientId = clientId;
    element.querySelector(".message__meta").append(textElement("span", "message__state", "Sending…"));
    this.list.append(element);
    this.#local.set(clientId, { clientId, body, attachments, element, failed: false });
    this.#decorate();
    this.scrollToBottom();
  }

  /** Mark a local message as refused; return false if no such message is waiting. */
  markFailed(clientId, detail) {
    const local = this.#local.get(clientId);
    if (!local) return false;
    local.failed = true;
    const { element } = local;
    element.classList.replace("message--pending", "message--failed");
    element.querySelector(".message__state").textContent = "Not sent";

    const failure = textElement("p", "message__failure", detail || "The message could not be sent.");
    const retry = textElement("button", "button button--small", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => this.#retry(local));
    failure.append(" ", retry);
    element.append(failure);
    return true;
  }

  /** Return the local messages still waiting for the server, oldest first. */
  unconfirmed() {
    return [...this.#local.values()].filter((local) => !local.failed);
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  #retry(local) {
    local.failed = false;
    local.element.classList.replace("message--failed", "message--pending");
    local.element.querySelector(".message__state").textContent = "Sending…";
    local.element.querySelector(".message__failure")?.remove();
    this.onRetry(local);
  }

  #insert(message) {
    const seq = message?.seq;
    if (!Number.isInteger(seq) || this.#bySeq.has(seq)) return;
    const element = this.#render(message);

    // The echo of a local message replaces it. Only the author's own echo counts:
    // a client id is chosen by the client, so another user could repeat one.
    const mine = message.author === this.username;
    const local = mine && message.client_id != null ? this.#local.get(message.client_id) : undefined;
    if (local) {
      local.element.remove();
      this.#local.delete(message.client_id);
    }

    this.list.insertBefore(element, this.#elementAfter(seq));
    this.#bySeq.set(seq, { message, element });
    if (this.lowestSeq === null || seq < this.lowestSeq) this.lowestSeq = seq;
    if (this.highestSeq === null || seq > this.highestSeq) this.highestSeq = seq;
  }

  /** Return the element a message with this seq goes before (null: the end). */
  #elementAfter(seq) {
    if (this.highestSeq === null || seq > this.highestSeq) {
      // Newest confirmed message: after the others, before the unconfirmed ones.
      return this.#local.values().next().value?.element ?? null;
    }
    for (const child of this.list.children) {
      if (Number(child.dataset.seq) > seq) return child;
    }
    return null;
  }

  /**
   * Place the day headings and the "New messages" divider, and group each author's consecutive messages.
   * Runs after every change: messages arrive in any order (older pages, catch-ups), so neighbours change.
   */
  #decorate() {
    const items = [...this.list.children].filter((child) => child.classList.contains("message"));
    const { after, upTo } = this.#unread ?? {};
    const firstUnread = this.#unread
      ? items.find((item) => Number(item.dataset.seq) > after && Number(item.dataset.seq) <= upTo)
      : undefined;
    const wanted = new Set();
    let previous = null;
    for (const item of items) {
      const before = [];
      const day = item.dataset.day;
      if (day && day !== previous?.dataset.day) before.push(this.#dayDivider(day, Number(item.dataset.time)));
      if (item === firstUnread) before.push((this.#divider ??= dividerElement()));
      const grouped = previous !== null && before.length === 0 && previous.dataset.author === item.dataset.author
        && Number(item.dataset.time) - Number(previous.dataset.time) < GROUP_WITHIN_MS;
      item.classList.toggle("message--grouped", grouped);
      // Put each separator right before its message, moving only what is out of place.
      let next = item;
      for (const separator of before.reverse()) {
        if (separator.nextElementSibling !== next) this.list.insertBefore(separator, next);
        next = separator;
        wanted.add(separator);
      }
      previous = item;
    }
    for (const separator of [this.#divider, ...this.#dayDividers.values()]) {
      if (separator && !wanted.has(separator)) separator.remove();
    }
  }

  #dayDivider(day, time) {
    let divider = this.#dayDividers.get(day);
    if (!divider) {
      divider = document.createElement("li");
      divider.className = "day-divider";
      divider.append(textElement("time", "day-divider__label", ""));
      divider.firstChild.dateTime = day;
      this.#dayDividers.set(day, divider);
    }
    // Relabelled each time, so "Today" becomes "Yesterday" on a page left open overnight.
    const label = formatDay(new Date(time));
    if (divider.firstChild.textContent !== label) divider.firstChild.textContent = label;
    return divider;
  }

  #nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  /** Build a message's element; confirmed ones of the user get edit and delete actions. */
  #render(message, confirmed = true) {
    const { author, created_at: createdAt, edited_at: editedAt } = message;
    const mine = author === this.username;
    const item = document.createElement("li");
    item.className = mine ? "message message--mine" : "message";
    if (confirmed) item.dataset.seq = String(message.seq);
    const name = String(author ?? "");
    const created = new Date(createdAt);
    item.dataset.author = name;
    item.dataset.day = dayKey(created);
    item.dataset.time = String(created.getTime());

    const meta = document.createElement("div");
    meta.className = "message__meta";
    const authorElement = textElement(mine ? "span" : "a", "message__author", name);
    if (!mine) authorElement.href = directUrl(name);
    const time = timeElement("message__time", created);
    if (confirmed && this.permalink) {
      const link = document.createElement("a");
      link.className = "message__permalink";
      link.href = this.permalink(message.seq);
      link.append(time);
      meta.append(authorElement, " ", link);
    } else {
      meta.append(authorElement, " ", time);
    }

    const text = bodyElement(message, this.username);
    if (editedAt) {
      const edited = textElement("span", "message__edited", "(edited)");
      edited.title = `Edited ${formatFull(new Date(editedAt))}`;
      // Beside the last line of text, not under the last paragraph.
      const last = text.lastElementChild;
      (last && last.tagName === "P" ? last : text).append(" ", edited);
    }
    item.append(meta, text);
    if (message.attachments?.length) item.append(attachmentsElement(message.attachments));
    if (!confirmed) return item;
    if (message.previews?.length) {
      const remove = mine && this.onRemovePreview ? (url) => this.onRemovePreview(message, url) : null;
      item.append(previewsElement(message, remove));
    }
    if (message.reactions?.length) {
      item.append(reactionsElement(message, this.username, (emoji, on) => this.#react(message.seq, emoji, on)));
    }
    if (this.onThread) {
      const thread = this.#threadElement(message);
      if (thread) item.append(thread);
    }
    item.append(this.#actions(message, mine));
    return item;
  }

  /** Return the line under a message that opens its thread ("2 replies, last 10:42"), or null when none. */
  #threadElement(message) {
    if (message.parent != null) {
      const parent = this.byId(message.parent);
      const note = textElement(parent ? "button" : "span", "message__thread button button--small button--quiet",
        "Replied in a thread");
      if (parent) {
        note.type = "button";
        note.addEventListener("click", () => this.onThread(this.byId(message.parent) ?? parent));
      }
      return note;
    }
    if (!message.reply_count) return null;
    const count = message.reply_count === 1 ? "1 reply" : `${message.reply_count} replies`;
    const last = message.last_reply_at ? `, last ${formatTime(new Date(message.last_reply_at))}` : "";
    const button = textElement("button", "message__thread button button--small button--quiet", `${count}${last}`);
    button.type = "button";
    button.addEventListener("click", () => this.onThread(this.get(message.seq) ?? message));
    return button;
  }

  #react(seq, emoji, on) {
    const message = this.get(seq);
    if (message) this.onReact?.(message, emoji, on);
  }

  #actions({ seq, parent }, mine) {
    const actions = document.createElement("div");
    actions.className = "message__actions";
    // Every member reacts; staff may delete anyone's message, but only authors edit.
    const offered = [["React", (message, button) => this.onPickReaction?.(message, button)]];
    if (this.onThread && parent == null) offered.push(["Reply", this.onThread]);
    if (mine && this.onEdit) offered.push(["Edit", this.onEdit]);
    if (mine || this.isStaff) offered.push(["Delete", this.onDelete]);
    if (!mine && this.onReport) offered.push(["Report", this.onReport]);
    for (const [label, handler] of offered) {
      const button = textElement("button", "button button--small button--quiet", label);
      button.type = "button";
      // Looked up on click, so an edited message is offered as it is now.
      button.addEventListener("click", () => {
        const message = this.get(seq);
        if (message) handler(message, button);
      });
      actions.append(button);
    }
    if (this.permalink) {
      // The time is the permalink, but a message grouped under the one before shows no time.
      const link = textElement("a", "button button--small button--quiet", "Link");
      link.href = this.permalink(seq);
      link.setAttribute("aria-label", "Link to this message");
      actions.append(link);
    }
    return actions;
  }
}

function timeElement(className, date) {
  const time = textElement("time", className, formatTime(date));
  if (!Number.isNaN(date.getTime())) time.dateTime = date.toISOString();
  time.title = formatFull(date);
  return time;
}

function dividerElement() {
  // A list item, not role="separator": a list may only hold items, and this one reads well as one.
  return textElement("li", "unread-divider", "New messages");
}

function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

/** Build a message's body: the server's sanitised HTML (docs/protocol.md, `html`), or, before the server has it, the text. */
function bodyElement(message, username) {
  const body = document.createElement("div");
  body.className = "message__body";
  if (typeof message.html === "string") {
    // Rendered and sanitised with an allow-list by the server (chat/domain/markup.py); the CSP forbids inline script anyway.
    body.innerHTML = message.html;
    for (const mention of body.querySelectorAll(".mention")) {
      if (mention.dataset.user === username) mention.classList.add("mention--me");
    }
  } else {
    body.classList.add("message__body--text");
    body.append(renderRichText(String(message.body ?? ""), username));
  }
  return body;
}
