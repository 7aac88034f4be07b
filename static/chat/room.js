import { Announcer } from "./announce.js";
import { disableComposer, setupComposer } from "./composer.js";
import { Editor } from "./editing.js";
import { History } from "./history.js";
import { MessageList, newClientId } from "./messages.js";
import { Notice } from "./notices.js";
import { MentionNotifier } from "./notify.js";
import { OnlineList } from "./presence.js";
import { ReadMarker } from "./read.js";
import { foldSidebarOnPhones } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { showStatus } from "./status.js";
import { setupTypingSender, TypingIndicator } from "./typing.js";

// Errors without a client id that can answer a history request; others (forbidden, not_found …) answer edits and deletes.
const HISTORY_ERRORS = new Set(["invalid", "unavailable"]);

const config = JSON.parse(document.getElementById("room-config").textContent);
const byId = (id) => document.getElementById(id);
const form = byId("composer");
const textarea = byId("composer-body");
const scroller = byId("message-scroller");

const notice = new Notice(byId("room-alert"));
const messages = new MessageList(byId("messages"), scroller, {
  username: config.username,
  isStaff: Boolean(config.isStaff),
  onRetry: sendLocal,
  onEdit: (message) => editor.start(message),
  onDelete: deleteMessage,
});
const socket = new ChatSocket(config.wsPath, {
  onFrame: receive,
  onStatus: (state) => showStatus(byId("connection-status"), state),
  resumeSeq: () => history.resumeSeq,
  onFinalClose: closedForGood,
  heartbeatMs: config.heartbeatMs,
});
const history = new History({ messages, socket, button: byId("load-older"), scroller });
const editor = new Editor({
  form,
  textarea,
  banner: byId("composer-editing"),
  cancelButton: byId("composer-cancel"),
  lastOwn: () => messages.lastOwn(),
});
const typing = new TypingIndicator(byId("typing"));
const online = new OnlineList(byId("online-list"), byId("online-count"), config.username);
const readMarker = new ReadMarker({ send: (frame) => socket.send(frame), highestSeq: () => messages.highestSeq });
const mentions = new MentionNotifier({
  region: byId("toasts"),
  enableButton: byId("enable-notifications"),
  currentRoom: config.slug,
});
const announcer = new Announcer(byId("announcer"), config.username);
let welcomed = false;

const handlers = new Map([
  ["welcome", welcome],
  ["message", ({ message }) => {
    if (!message) return;
    typing.stopped(message.author);
    messages.add([message]);
    announcer.message(message);
    history.live();
    readMarker.shown();
  }],
  ["message_edited", ({ message }) => messages.edit(message)],
  ["message_deleted", ({ seq }) => {
    if (editor.target?.seq === seq) editor.cancel();
    messages.remove(seq);
  }],
  ["history", (frame) => {
    history.answer(frame);
    readMarker.shown();
  }],
  ["typing", ({ user }) => typing.typing(user)],
  ["join", ({ user }) => online.join(user)],
  ["leave", ({ user }) => {
    online.leave(user);
    typing.stopped(user);
  }],
  ["notification", (frame) => mentions.notify(frame)],
  ["error", refused],
]);

function receive(frame) {
  handlers.get(frame.type)?.(frame);
}

function welcome(frame) {
  if (reloadForNewBuild(frame.build)) return;
  history.welcome(frame, socket.resumedAfter !== null);
  online.replace(frame.online);
  // Typing frames may have stopped while the page was away.
  typing.clear();
  if (!welcomed) {
    // Only the first welcome places the divider: later ones already reflect this page's own reads.
    welcomed = true;
    const lastRead = Number.isInteger(frame.last_read_seq) ? frame.last_read_seq : config.lastReadSeq;
    messages.markUnread(lastRead, messages.highestSeq ?? lastRead);
    readMarker.known(lastRead);
  }
  readMarker.shown();
  // Anything written while disconnected goes now; the server drops a client id it already has.
  for (const local of messages.unconfirmed()) sendLocal(local);
}

function refused(frame) {
  if (frame.client_id != null) {
    // A refusal for a message no longer shown as waiting needs no word.
    messages.markFailed(frame.client_id, frame.detail);
    return;
  }
  // Answers come in order, so while a history request waits, its refusal is the likeliest one.
  if (HISTORY_ERRORS.has(frame.code) && history.waiting) history.refused();
  notice.show(frame.detail || "Something went wrong.");
}

function sendLocal({ clientId, body }) {
  // Unsent now means sent after the next welcome, so the result needs no handling.
  socket.send({ type: "send", body, client_id: clientId });
}

function saveEdit(body) {
  const { id, body: before } = editor.target;
  if (body !== before && !socket.send({ type: "edit", id, body })) {
    textarea.value = body;
    notice.show("Not connected: the edit was not saved. Try again in a moment.");
    return;
  }
  editor.cancel();
}

function deleteMessage({ id }) {
  if (!window.confirm("Delete this message?")) return;
  if (!socket.send({ type: "delete", id })) notice.show("Not connected: the message was not deleted.");
}

// Remembers, for this tab, the build it last reloaded itself for.
const RELOADED_FOR_KEY = "chat.reloadedForBuild";

/** Reload the page when the server runs another build than the one it was served by; return whether it does. */
function reloadForNewBuild(build) {
  if (typeof build !== "string" || !config.build || build === config.build) return false;
  try {
    // Once per build: a page still served by an old process (a deploy half done) must not reload in a loop.
    if (sessionStorage.getItem(RELOADED_FOR_KEY) === build) return false;
    sessionStorage.setItem(RELOADED_FOR_KEY, build);
  } catch {
    return false; // Without storage nothing stops a loop.
  }
  if (messages.unconfirmed().length > 0 || textarea.value.trim()) {
    // A reload would lose what the user wrote: let them finish.
    notice.show("A new version of the chat is out: reload the page once your message is sent.", { stay: true });
    return false;
  }
  location.reload();
  return true;
}

// Why the server closed for good, by close code (docs/protocol.md, Closing).
const FINAL_TEXTS = new Map([
  [4400, "This chat address is not valid."],
  [4401, "Your session ended (you logged out or it expired)."],
  [4403, "You no longer have access to this room."],
  [4404, "This room does not exist (it may have been deleted)."],
  [4429, "You have too many chat tabs open: close one."],
]);
const SESSION_ENDED_CODE = 4401;
const TOO_MANY_SOCKETS_CODE = 4429;

function closedForGood(code, detail) {
  const text = code === TOO_MANY_SOCKETS_CODE && detail ? detail : FINAL_TEXTS.get(code) ?? "The chat closed this page's connection.";
  const alert = byId("room-alert");
  notice.show(text, { stay: true });
  if (code === SESSION_ENDED_CODE) {
    alert.append(" ", link("Log in again", alert.dataset.loginUrl));
  } else if (code === TOO_MANY_SOCKETS_CODE) {
    alert.append(" Then ", link("reload this page", location.href), ".");
  }
  editor.cancel();
  typing.clear();
  disableComposer(form);
}

function link(text, href) {
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.textContent = text;
  return anchor;
}

setupComposer(form, textarea, (body) => {
  if (editor.target) {
    saveEdit(body);
    return;
  }
  const clientId = newClientId();
  messages.addLocal(clientId, body);
  sendLocal({ clientId, body });
});
setupTypingSender(textarea, (frame) => socket.send(frame));
foldSidebarOnPhones(byId("room-sidebar"));

socket.open();
