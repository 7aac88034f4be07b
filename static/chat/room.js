import { setupComposer } from "./composer.js";
import { History } from "./history.js";
import { MessageList, newClientId } from "./messages.js";
import { ChatSocket } from "./socket.js";
import { showStatus } from "./status.js";

// Long enough to read a sentence, short enough not to linger over the conversation.
const ALERT_MS = 8000;

const config = JSON.parse(document.getElementById("room-config").textContent);
const statusElement = document.getElementById("connection-status");
const alertElement = document.getElementById("room-alert");
const scroller = document.getElementById("message-scroller");
const textarea = document.getElementById("composer-body");

const messages = new MessageList(document.getElementById("messages"), scroller, {
  username: config.username,
  onRetry: sendLocal,
});
const socket = new ChatSocket(config.wsPath, {
  onFrame: receive,
  onStatus: (state) => showStatus(statusElement, state),
  resumeSeq: () => history.resumeSeq,
});
const history = new History({
  messages,
  socket,
  button: document.getElementById("load-older"),
  scroller,
});

// Frame types without a handler (typing, join, edits …) are ignored until the page knows them.
const handlers = new Map([
  ["welcome", welcome],
  ["message", (frame) => {
    if (!frame.message) return;
    messages.add([frame.message]);
    history.live(frame.message);
  }],
  ["history", (frame) => history.answer(frame)],
  ["error", refused],
]);

function receive(frame) {
  handlers.get(frame.type)?.(frame);
}

function welcome(frame) {
  history.welcome(frame, socket.resumedAfter !== null);
  // Anything written while disconnected goes now; the server drops a client id it already has.
  for (const local of messages.unconfirmed()) sendLocal(local);
}

function refused(frame) {
  if (frame.client_id != null) {
    // A refusal for a message no longer shown as waiting needs no word.
    messages.markFailed(frame.client_id, frame.detail);
    return;
  }
  history.refused();
  showAlert(frame.detail || "Something went wrong.");
}

function sendLocal({ clientId, body }) {
  // Unsent now means sent after the next welcome, so the result needs no handling.
  socket.send({ type: "send", body, client_id: clientId });
}

let alertTimer = null;
function showAlert(text) {
  alertElement.textContent = text;
  alertElement.hidden = false;
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => {
    alertElement.hidden = true;
  }, ALERT_MS);
}

setupComposer(document.getElementById("composer"), textarea, (body) => {
  const clientId = newClientId();
  messages.addLocal(clientId, body);
  sendLocal({ clientId, body });
});

socket.open();
