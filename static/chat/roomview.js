import { Announcer } from "./announce.js";
import { setupCompletion } from "./completion.js";
import { disableComposer, setupComposer } from "./composer.js";
import { Editor } from "./editing.js";
import { History } from "./history.js";
import { MessageList, newClientId } from "./messages.js";
import { Notice } from "./notices.js";
import { OnlineList } from "./presence.js";
import { EmojiPicker } from "./reactions.js";
import { ReadMarker } from "./read.js";
import { ThreadPanel } from "./thread.js";
import { setupTypingSender, TypingIndicator } from "./typing.js";
import { Uploads } from "./uploads.js";
import { messageUrl, uploadUrl } from "./urls.js";

// Why a room cannot be shown, by the code of the error that answered its subscribe.
const REFUSED_TEXTS = new Map([
  ["forbidden", "You no longer have access to this room."],
  ["not_found", "This room does not exist (it may have been deleted)."],
]);

// One reaction picker for the page: room switches keep it, and its emoji list is fetched once.
let picker = null;

function pickerFor(config) {
  picker ??= new EmojiPicker(config.emojiUrl);
  return picker;
}

/**
 * One open room: its messages, composer, typing and online list, shown in the page's room elements. It is a
 * subscription of the tab's socket that lives and dies with it (subscribe on each hello, unsubscribe on dispose).
 */
export class RoomView {
  #subscribeId = null;
  #subscribed = false;
  // Whether the view holds the room's messages, so that a resubscribe resumes instead of starting again.
  #loaded = false;
  #firstView = true;
  // The change the name and topic shown are current to: an older one (a replay read before a live change) is dropped.
  #roomCseq = 0;
  #ended = false;
  #abort = new AbortController();
  #reportId = null;
  #unmuteTimer = null;

  /** config is the page's room-config; onMessage(message) runs for each new message shown (the sidebar follows). */
  constructor({ config, socket, byId, onMessage, onRenamed }) {
    this.slug = config.slug;
    this.config = config;
    this.socket = socket;
    this.onMessage = onMessage;
    this.onRenamed = onRenamed;
    this.nameElement = byId("room-name");
    this.topicElement = byId("room-topic");
    this.archivedElements = {
      banner: byId("room-archived"),
      archive: byId("room-archive"),
      unarchive: byId("room-unarchive"),
      edit: byId("room-edit"),
      editForm: byId("room-edit-form"),
      list: byId("messages"),
    };
    this.form = byId("composer");
    this.mutedElement = byId("composer-muted");
    // Busy until the room's view has come: screen readers wait, and so do the browser tests.
    this.scroller = byId("message-scroller");
    this.textarea = byId("composer-body");
    this.notice = new Notice(byId("room-alert"));
    this.messages = new MessageList(byId("messages"), byId("message-scroller"), {
      username: config.username,
      isStaff: Boolean(config.isStaff),
      permalink: (seq) => messageUrl(config.slug, seq),
      onRetry: (local) => this.#sendLocal(local),
      onEdit: (message) => this.editor.start(message),
      onDelete: (message) => this.#delete(message),
      onReact: (message, emoji, on) => this.#react(message, emoji, on),
      onPickReaction: (message, button) => this.#pickReaction(message, button),
      onThread: (message) => this.thread.open(message),
      onReport: (message) => this.#report(message),
      onRemovePreview: (message, url) => this.#removePreview(message, url),
    });
    // Both composers upload to the room, with the CSRF token the page's forms carry.
    const uploadTo = { url: uploadUrl(config.slug), csrfToken: this.form.elements.csrfmiddlewaretoken?.value ?? "" };
    this.thread = new ThreadPanel({
      byId,
      uploadTo,
      username: config.username,
      isStaff: Boolean(config.isStaff),
      permalink: (seq) => messageUrl(config.slug, seq),
      request: (frame) => this.socket.request({ ...frame, room: this.slug }),
      send: (frame) => this.#send(frame),
      onDelete: (message) => this.#delete(message),
      onReact: (message, emoji, on) => this.#react(message, emoji, on),
      onPickReaction: (message, button) => this.#pickReaction(message, button),
      onRemovePreview: (message, url) => this.#removePreview(message, url),
    });
    this.history = new History({
      messages: this.messages,
      request: (frame) => this.socket.request({ ...frame, room: this.slug }),
      apply: (change) => (change?.type === "room_changed" ? this.#showRoom(change) : this.#apply(change)),
      button: byId("load-older"),
      scroller: byId("message-scroller"),
    });
    this.editor = new Editor({
      form: this.form,
      textarea: this.textarea,
      banner: byId("composer-editing"),
      cancelButton: byId("composer-cancel"),
      lastOwn: () => this.messages.lastOwn(),
    });
    this.typing = new TypingIndicator(byId("typing"));
    this.online = new OnlineList(byId("online-list"), byId("online-count"), config.username);
    this.readMarker = new ReadMarker({
      send: (frame) => this.#send(frame),
      highestSeq: () => this.messages.highestSeq,
      signal: this.#abort.signal,
    });
    this.announcer = new Announcer(byId("announcer"), config.username);
    this.uploads = new Uploads({ byId, prefix: "composer", form: this.form, textarea: this.textarea, ...uploadTo });
    setupComposer(this.form, this.textarea, (body) => this.#compose(body), () => this.uploads.count > 0);
    setupCompletion(this.textarea, byId("composer-completion"), config);
    setupRoomEditor(byId("room-edit"), byId("room-edit-form"), (fields) => {
      if (this.#subscribed) this.socket.request({ type: "room_update", room: this.slug, ...fields });
    });
    setupTypingSender(this.textarea, (frame) => this.#send(frame));
    confirmSubmit(this.archivedElements.archive);
    setupCopy(byId("invite-copy"), byId("invite-url"));
    this.#showArchived(Boolean(config.archived));
    this.#showMuted(null);
    this.handlers = new Map([
      ["subscribed", (frame) => this.#welcome(frame)],
      ["message", (frame) => this.#live(frame)],
      ["message_edited", (frame) => this.#live(frame)],
      ["message_deleted", (frame) => this.#live(frame)],
      ["message_reactions", (frame) => this.#summary(frame, { reactions: frame.reactions })],
      ["message_previews", (frame) => this.#summary(frame, { previews: frame.previews })],
      ["room_changed", (frame) => {
        if (!this.#subscribed) return;
        this.#showRoom(frame);
        this.history.live(frame.cseq);
      }],
      ["history", (frame) => this.#page(frame)],
      ["changes", (frame) => this.#page(frame)],
      ["typing", ({ user }) => this.typing.typing(user)],
      ["presence", ({ online, offline }) => {
        const gone = Array.isArray(offline) ? offline : [];
        this.online.change(Array.isArray(online) ? online : [], gone);
        for (const user of gone) this.typing.stopped(user);
      }],
      ["unsubscribed", ({ reason }) => {
        if (reason === "removed") this.end(REFUSED_TEXTS.get("forbidden"));
      }],
      ["error", (frame) => this.#refused(frame)],
      ["room_muted", ({ until }) => this.#showMuted(until)],
      ["ack", ({ request_id: id }) => {
        if (id != null && id === this.#reportId) this.notice.show("Reported: staff will look at it.");
      }],
    ]);
  }

  /** Subscribe on the current connection (after each hello), resuming after the cseq the view is current to. */
  subscribe() {
    if (this.#ended) return;
    this.#subscribed = false;
    const frame = { type: "subscribe", room: this.slug };
    if (this.#loaded) frame.after = this.history.cursor.cseq;
    this.#subscribeId = this.socket.request(frame);
    this.scroller.setAttribute("aria-busy", "true");
  }

  /** Handle a frame about this room. */
  receive(frame) {
    this.handlers.get(frame.type)?.(frame);
  }

  /** Stop showing the room: unsubscribe, and let go of timers and listeners. */
  dispose() {
    this.#ended = true;
    this.readMarker.flush();
    this.#abort.abort();
    clearTimeout(this.#unmuteTimer);
    this.typing.clear();
    this.thread.close();
    if (this.#subscribed) this.socket.send({ type: "unsubscribe", room: this.slug });
    this.#subscribed = false;
  }

  /** Return whether messages the user wrote are still waiting to be sent. */
  get unsent() {
    return this.messages.unconfirmed().length > 0;
  }

  /** Show why the room can no longer be used, and turn its composer off. */
  end(text) {
    this.#ended = true;
    this.#subscribed = false;
    this.notice.show(text, { stay: true });
    this.editor.cancel();
    this.typing.clear();
    disableComposer(this.form);
  }

  #welcome(frame) {
    if (frame.request_id !== this.#subscribeId) return; // The answer to an earlier connection's subscribe.
    this.#subscribed = true;
    if (!frame.direct) this.#showRoom(frame);
    this.#showMuted(frame.muted_until ?? null);
    this.#loaded = true;
    this.scroller.setAttribute("aria-busy", "false");
    this.history.subscribed(frame);
    this.online.replace(frame.online);
    // Typing frames may have stopped while the page was away.
    this.typing.clear();
    if (this.#firstView) {
      // Only the first view places the divider: later ones already reflect this page's own reads.
      this.#firstView = false;
      const lastRead = Number.isInteger(frame.last_read_seq) ? frame.last_read_seq : this.config.lastReadSeq;
      this.messages.markUnread(lastRead, this.messages.highestSeq ?? lastRead);
      this.readMarker.known(lastRead);
      const { focusSeq, focusThread } = this.config;
      if (focusThread) this.thread.open(focusThread, focusSeq);
      else if (Number.isInteger(focusSeq)) this.history.reach(focusSeq, (seq) => this.#focus(seq));
    }
    this.readMarker.shown();
    // Anything written while disconnected goes now; the server drops a client id it already has.
    for (const local of this.messages.unconfirmed()) this.#sendLocal(local);
    this.thread.resend();
  }

  /** Apply a change of the room (live or replayed) to the lists it belongs in: the room's, the thread shown. */
  #apply(change) {
    this.thread.apply(change);
    if (inRoom(change)) this.messages.apply(change);
  }

  #live(frame) {
    if (!this.#subscribed) return;
    const change = frame.type === "message_deleted" ? frame : { type: "message", message: frame.message };
    if (frame.type === "message_deleted" && this.editor.target?.seq === frame.seq) this.editor.cancel();
    const fresh = frame.type === "message" && frame.message && inRoom(change) && !this.messages.has(frame.message.seq);
    this.#apply(change);
    this.history.live(change.cseq ?? change.message?.cseq);
    if (fresh) {
      this.typing.stopped(frame.message.author);
      this.announcer.message(frame.message);
      this.onMessage?.(frame.message);
      this.readMarker.shown();
    }
  }

  /** Show the room's name and topic as of change `cseq` (a view, a live change or a replayed one), unless older. */
  #showRoom({ name, topic, archived, cseq }) {
    if (Number.isInteger(cseq)) {
      if (cseq <= this.#roomCseq) return;
      this.#roomCseq = cseq;
    }
    if (typeof name === "string" && name !== this.nameElement.textContent) {
      this.nameElement.textContent = name;
      this.onRenamed?.(name);
    }
    if (typeof topic === "string") {
      this.topicElement.textContent = topic;
      this.topicElement.hidden = topic === "";
    }
    if (typeof archived === "boolean") this.#showArchived(archived);
  }

  /** Show the room as read-only while archived: no composer, no message actions, the right archive button. */
  #showArchived(archived) {
    const { banner, archive, unarchive, edit, editForm, list } = this.archivedElements;
    banner.hidden = !archived;
    this.form.hidden = archived;
    list.classList.toggle("message-list--readonly", archived);
    if (archive) archive.hidden = archived;
    if (unarchive) unarchive.hidden = !archived;
    if (edit) edit.hidden = archived;
    if (archived) {
      this.editor.cancel();
      if (editForm) editForm.hidden = true;
    }
  }

  /** Say in the composer that the user is muted here until `until` (ISO 8601), and keep them from sending; null: not. */
  #showMuted(until) {
    clearTimeout(this.#unmuteTimer);
    const end = until ? new Date(until) : null;
    const left = end ? end.getTime() - Date.now() : 0;
    const muted = left > 0;
    this.mutedElement.hidden = !muted;
    this.textarea.disabled = muted;
    this.form.querySelector("button[type=submit]").disabled = muted;
    if (!muted) return;
    const sameDay = end.toDateString() === new Date().toDateString();
    const shown = sameDay
      ? end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : end.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    this.mutedElement.textContent = `You are muted in this room until ${shown}.`;
    // The mute ends by itself, with no frame; timers past 24 days overflow, and a view comes before then anyway.
    this.#unmuteTimer = setTimeout(() => this.#showMuted(null), Math.min(left, 2 ** 31 - 1));
  }

  #report(message) {
    const reason = window.prompt(`Report ${message.author}'s message to staff. Why?`)?.trim();
    if (!reason) return;
    if (!this.#subscribed) {
      this.notice.show("Not connected: the message was not reported.");
      return;
    }
    this.#reportId = this.socket.request({ type: "report", room: this.slug, id: message.id, reason: reason.slice(0, 250) });
  }

  /** Apply a message's new reactions or previews (`fields`), sent without the rest of the message. */
  #summary(frame, fields) {
    if (!this.#subscribed) return;
    // A message not shown (older than the pages loaded) comes as it is now with its page.
    for (const list of [this.messages, this.thread.messages]) {
      const shown = list?.get(frame.seq);
      if (shown) list.apply({ type: "message", message: { ...shown, ...fields, cseq: frame.cseq } });
    }
    this.history.live(frame.cseq);
  }

  #removePreview(message, url) {
    if (this.#subscribed) this.socket.request({ type: "preview_remove", room: this.slug, id: message.id, url });
  }

  #pickReaction(message, button) {
    pickerFor(this.config).open(button, (emoji) => this.#react(message, emoji, true));
  }

  #react(message, emoji, on) {
    if (this.#subscribed) this.socket.request({ type: on ? "react" : "unreact", room: this.slug, id: message.id, emoji });
  }

  #focus(seq) {
    if (!this.messages.focus(seq)) {
      this.notice.show("That message is not here: it was deleted, or it is too far back to open from a link.");
    }
  }

  #page(frame) {
    if (this.thread.answer(frame)) return;
    if (this.history.answer(frame)) this.readMarker.shown();
  }

  #refused(frame) {
    if (frame.request_id != null && frame.request_id === this.#subscribeId) {
      this.end(REFUSED_TEXTS.get(frame.code) ?? frame.detail ?? "This room cannot be opened.");
      return;
    }
    if (frame.client_id != null) {
      // A refusal for a message no longer shown as waiting needs no word.
      this.messages.markFailed(frame.client_id, frame.detail);
      return;
    }
    this.history.refused(frame);
    this.notice.show(frame.detail || "Something went wrong.");
  }

  #send(frame) {
    return this.#subscribed && this.socket.send({ ...frame, room: this.slug });
  }

  #sendLocal({ clientId, body, attachments }) {
    // Unsent now means sent after the next subscribed, so the result needs no handling.
    this.#send({ type: "send", body, client_id: clientId, ...(attachments?.length ? { attachments } : {}) });
  }

  /** Send the message once its files are uploaded: only those that made it go with it. */
  async #composeWithFiles(body) {
    const attachments = await this.uploads.take();
    if (!attachments.length && !body.trim()) return;
    const clientId = newClientId();
    this.messages.addLocal(clientId, body, attachments);
    this.#sendLocal({ clientId, body, attachments });
  }

  #compose(body) {
    if (!this.editor.target && this.uploads.count) {
      this.#composeWithFiles(body);
      return;
    }
    if (!this.editor.target) {
      const clientId = newClientId();
      this.messages.addLocal(clientId, body);
      this.#sendLocal({ clientId, body });
      return;
    }
    const { id, body: before } = this.editor.target;
    if (body !== before && !this.#send({ type: "edit", id, body })) {
      this.textarea.value = body;
      this.notice.show("Not connected: the edit was not saved. Try again in a moment.");
      return;
    }
    this.editor.cancel();
  }

  #delete({ id }) {
    if (!window.confirm("Delete this message?")) return;
    if (!this.#send({ type: "delete", id })) this.notice.show("Not connected: the message was not deleted.");
  }
}

/** Return whether a change shows in the room's own list: all but replies kept in their thread. */
function inRoom(change) {
  const message = change?.message;
  return !message || message.parent == null || Boolean(message.also_in_room);
}

/** Copy the invite link to the clipboard on click (absent for those who cannot invite); select it if refused. */
function setupCopy(button, input) {
  if (!button || !input) return;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = "Copied";
    } catch {
      // Without clipboard access (an insecure origin, a refusal) the user copies the selected text.
      input.select();
    }
  });
}

/** Ask before a form with a data-confirm question is sent (absent forms are skipped). */
function confirmSubmit(form) {
  form?.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

/** Wire the room's name-and-topic form (absent when the user may not change them): onSave({name, topic}). */
function setupRoomEditor(button, form, onSave) {
  if (!button || !form) return;
  const toggle = (editing) => {
    form.hidden = !editing;
    button.hidden = editing;
  };
  button.addEventListener("click", () => {
    form.elements.name.value = document.getElementById("room-name").textContent;
    form.elements.topic.value = document.getElementById("room-topic").textContent;
    toggle(true);
    form.elements.topic.focus();
  });
  form.querySelector("[data-cancel]").addEventListener("click", () => toggle(false));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSave({ name: form.elements.name.value, topic: form.elements.topic.value });
    toggle(false);
  });
}
