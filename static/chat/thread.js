import { setupComposer } from "./composer.js";
import { MessageList, newClientId } from "./messages.js";
import { Uploads } from "./uploads.js";

// A thread's replies come in pages of this many.
const PAGE_SIZE = 100;

/**
 * The thread panel beside the room (the whole screen on a phone): a message and its replies, live, with a composer
 * of its own. The room view hands it every change of the room; it keeps those of the thread it shows.
 */
export class ThreadPanel {
  #parent = null; // { id, seq } of the message whose thread is shown
  #page = null; // the request id of the page of replies asked for
  #parentRequest = null; // the request id of the parent, when the panel opened from a link
  #focus = null; // the seq of a reply to highlight once it is shown

  /** request(frame) sends a room frame with a request id and returns the id (null offline); send(frame) as is. */
  constructor({
    byId, uploadTo, username, isStaff, permalink, request, send, onDelete, onReact, onPickReaction, onRemovePreview,
  }) {
    this.element = byId("thread-panel");
    this.request = request;
    this.send = send;
    this.listOptions = {
      username,
      isStaff,
      permalink,
      onRetry: (local) => this.#sendLocal(local),
      // Replies are edited nowhere yet: the room's composer edits the room's messages.
      onEdit: null,
      onDelete,
      onReact,
      onPickReaction,
      onRemovePreview,
    };
    this.list = byId("thread-messages");
    this.scroller = byId("thread-scroller");
    this.form = byId("thread-composer");
    this.textarea = byId("thread-body");
    this.alsoInRoom = byId("thread-also");
    this.messages = null;
    byId("thread-close").addEventListener("click", () => this.close());
    this.followButton = byId("thread-follow");
    this.followButton.addEventListener("click", () => {
      const follow = this.followButton.getAttribute("aria-pressed") !== "true";
      if (this.#parent && this.request({ type: "follow", id: this.#parent.id, follow }) !== null) this.#following(follow);
    });
    this.uploads = new Uploads({ byId, prefix: "thread", form: this.form, textarea: this.textarea, ...uploadTo });
    setupComposer(this.form, this.textarea, (body) => this.#compose(body), () => this.uploads.count > 0);
  }

  /** Return the id of the message whose thread is shown, or null. */
  get parentId() {
    return this.#parent?.id ?? null;
  }

  /** Show the thread of `parent` (a message, or {id, seq} of one not loaded), highlighting reply `focusSeq`. */
  open(parent, focusSeq = null) {
    this.#parent = { id: parent.id, seq: parent.seq };
    this.#focus = focusSeq;
    this.list.replaceChildren();
    this.followButton.hidden = true;
    this.messages = new MessageList(this.list, this.scroller, this.listOptions);
    if (parent.author) this.messages.add([parent]);
    else this.#parentRequest = this.request({ type: "history", before: parent.seq + 1, limit: 1 });
    this.#more(0);
    this.element.hidden = false;
    document.body.classList.add("has-thread");
    this.textarea.focus();
  }

  close() {
    this.#parent = null;
    this.messages = null;
    this.element.hidden = true;
    document.body.classList.remove("has-thread");
  }

  /** Apply a change of the room (live or replayed) when it belongs to the thread shown. */
  apply(change) {
    if (!this.messages) return;
    const message = change?.message;
    if (change?.type === "message_deleted") {
      if (change.seq === this.#parent.seq) this.close();
      else this.messages.remove(change.seq);
    } else if (message && (message.parent === this.#parent.id || message.id === this.#parent.id)) {
      this.messages.apply(change);
      this.#focusIfShown();
    }
  }

  /** Take a history frame meant for the panel; return whether it was. */
  answer(frame) {
    if (!this.messages || frame.type !== "history") return false;
    if (frame.thread == null) {
      // The parent, asked for by seq when the panel opened from a link.
      if (frame.request_id == null || frame.request_id !== this.#parentRequest) return false;
      this.#parentRequest = null;
      const [parent] = frame.messages ?? [];
      if (parent?.id === this.#parent.id) this.messages.add([parent]);
      return true;
    }
    if (frame.thread !== this.#parent.id) return false;
    if (frame.request_id === this.#page) this.#page = null;
    if (typeof frame.following === "boolean") this.#following(frame.following);
    const replies = Array.isArray(frame.messages) ? frame.messages : [];
    this.messages.add(replies);
    this.#focusIfShown();
    if (frame.has_more && replies.length) this.#more(replies.at(-1).seq);
    return true;
  }

  /** Send again the replies written while disconnected (after each subscribed); the server drops repeats. */
  resend() {
    for (const local of this.messages?.unconfirmed() ?? []) this.#sendLocal(local);
  }

  #following(on) {
    this.followButton.hidden = false;
    this.followButton.setAttribute("aria-pressed", String(on));
    this.followButton.textContent = on ? "Following" : "Follow";
  }

  #more(after) {
    this.#page = this.request({ type: "history", thread: this.#parent.id, after, limit: PAGE_SIZE });
  }

  #focusIfShown() {
    if (this.#focus !== null && this.messages.focus(this.#focus)) this.#focus = null;
  }

  async #compose(body) {
    const parent = this.#parent;
    if (!parent) return;
    // The reply waits for its files; only those that made it go with it, to the thread it was written in.
    const attachments = this.uploads.count ? await this.uploads.take() : [];
    if (this.#parent !== parent || (!attachments.length && !body.trim())) return;
    const clientId = newClientId();
    this.messages.addLocal(clientId, body, attachments);
    this.#sendLocal({ clientId, body, attachments });
    this.#following(true); // whoever replies follows the thread
  }

  #sendLocal({ clientId, body, attachments }) {
    this.send({
      type: "send", body, client_id: clientId, thread: this.#parent.id, also_in_room: this.alsoInRoom.checked,
      ...(attachments?.length ? { attachments } : {}),
    });
  }
}
