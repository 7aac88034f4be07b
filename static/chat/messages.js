import { formatFull, formatShort } from "./format.js";

// Within this distance of the bottom the reader is following along, so new messages scroll into view.
const NEAR_BOTTOM_PX = 120;

/** Return a new client id for a message; the server uses it to drop repeats. */
export function newClientId() {
  // randomUUID exists only on secure origins (https, localhost); getRandomValues works everywhere.
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The message list: confirmed messages in seq order, then the user's own unconfirmed ones. */
export class MessageList {
  #bySeq = new Map(); // seq -> <li>
  #local = new Map(); // client_id -> { clientId, body, element, failed }, in the order written

  constructor(list, scroller, { username, onRetry }) {
    this.list = list;
    this.scroller = scroller;
    this.username = username;
    this.onRetry = onRetry;
    this.lowestSeq = null;
    this.highestSeq = null;
  }

  /** Insert confirmed messages in any order; a seq already shown is ignored. */
  add(messages, { older = false } = {}) {
    const following = this.#nearBottom();
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    for (const message of messages) this.#insert(message);
    // Older messages go above the reader's eyes; keep what they were reading where it was.
    if (older) this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    else if (following) this.scrollToBottom();
  }

  /** Show a message the user just wrote, before the server has confirmed it. */
  addLocal(clientId, body) {
    const element = renderMessage({ author: this.username, body, created_at: new Date().toISOString() }, true);
    element.classList.add("message--pending");
    element.dataset.clientId = clientId;
    element.querySelector(".message__meta").append(textElement("span", "message__state", "Sending…"));
    this.list.append(element);
    this.#local.set(clientId, { clientId, body, element, failed: false });
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
    const mine = message.author === this.username;
    const element = renderMessage(message, mine);
    element.dataset.seq = String(seq);

    // The echo of a local message replaces it. Only the author's own echo counts:
    // a client id is chosen by the client, so another user could repeat one.
    const local = mine && message.client_id != null ? this.#local.get(message.client_id) : undefined;
    if (local) {
      local.element.remove();
      this.#local.delete(message.client_id);
    }

    this.list.insertBefore(element, this.#elementAfter(seq));
    this.#bySeq.set(seq, element);
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

  #nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }
}

function renderMessage({ author, body, created_at: createdAt, edited_at: editedAt }, mine) {
  const item = document.createElement("li");
  item.className = mine ? "message message--mine" : "message";

  const meta = document.createElement("div");
  meta.className = "message__meta";
  const date = new Date(createdAt);
  const time = textElement("time", "message__time", formatShort(date));
  if (!Number.isNaN(date.getTime())) time.dateTime = date.toISOString();
  time.title = formatFull(date);
  meta.append(textElement("span", "message__author", String(author ?? "")), " ", time);
  if (editedAt) meta.append(" ", textElement("span", "message__edited", "(edited)"));

  item.append(meta, textElement("p", "message__body", String(body ?? "")));
  return item;
}

function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}
