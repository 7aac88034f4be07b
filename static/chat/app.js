import { fetchRoom, roomPathOf, swapRoom } from "./navigation.js";
import { Notifier } from "./notify.js";
import { reloadForNewBuild } from "./reload.js";
import { RoomList, roomLink, titleWithCount } from "./rooms.js";
import { RoomView } from "./roomview.js";
import { foldSidebarOnPhones } from "./sidebar.js";
import { ChatSocket } from "./socket.js";
import { showStatus } from "./status.js";
import { roomUrl } from "./urls.js";

// The room page: one socket for the tab, the live rooms sidebar, and the room shown, switched without a reload.

const byId = (id) => document.getElementById(id);
const readConfig = () => JSON.parse(byId("room-config").textContent);
let config = readConfig();
let baseTitle = document.title;
let view = null;
// Counts room switches, so that only the newest of several clicks in a row is shown.
let navigation = 0;
const drafts = new Map();
// Once the server closed for good, links load pages again: nothing live is left to keep.
let closed = false;

const socket = new ChatSocket(config.wsPath, {
  onFrame: receive,
  onStatus: (state) => showStatus(byId("connection-status"), state),
  onFinalClose: closedForGood,
  heartbeatMs: config.heartbeatMs,
});
const rooms = new RoomList(byId("rooms-nav"), {
  username: config.username,
  render: (summary) => {
    const item = document.createElement("li");
    item.className = "rooms-nav__item";
    item.append(roomLink(summary, "rooms-nav__link"));
    return item;
  },
  others: byId("public-rooms-nav"),
  onChange: () => {
    document.title = titleWithCount(baseTitle, rooms.unread);
  },
});
const notifier = new Notifier({
  region: byId("toasts"),
  enableButton: byId("enable-notifications"),
  currentRoom: () => view?.slug,
  currentThread: () => view?.thread.parentId ?? null,
});

const userHandlers = new Map([
  ["hello", (frame) => {
    if (reloadForNewBuild(frame.build, config.build, reloadLosesNothing)) return;
    rooms.replace(frame.rooms ?? []);
    view?.subscribe();
  }],
  ["room_activity", (frame) => rooms.activity(frame)],
  ["room_read", (frame) => rooms.read(frame)],
  ["room_added", (frame) => {
    rooms.add(frame.room);
    notifier.added(frame);
  }],
  ["room_removed", ({ room }) => rooms.remove(room)],
  // The room shown gets its own, as a room event; the others', for the sidebar, come as activity.
  ["room_changed", (frame) => {
    rooms.changed(frame);
    if (frame.room === view?.slug) view.receive(frame);
  }],
  ["notification", (frame) => notifier.notify(frame)],
]);

function reloadLosesNothing() {
  if (!view?.unsent && !byId("composer-body").value.trim()) return true;
  // A reload would lose what the user wrote: let them finish.
  view?.notice.show("A new version of the chat is out: reload the page once your message is sent.", { stay: true });
  return false;
}

function receive(frame) {
  const handler = userHandlers.get(frame.type);
  if (handler) handler(frame);
  else if (frame.room === view?.slug) view.receive(frame);
  else if (frame.type === "error" && frame.room == null) view?.receive(frame);
}

function openRoom() {
  view = new RoomView({
    config,
    socket,
    byId,
    onMessage: (message) => rooms.activity(message),
    onRenamed: (name) => {
      baseTitle = `${name} · Chat`;
      document.title = titleWithCount(baseTitle, rooms.unread);
    },
  });
  const textarea = byId("composer-body");
  textarea.value = drafts.get(config.slug) ?? "";
  rooms.show(config.slug);
  if (socket.ready) view.subscribe();
}

/** Show another room in place of this one; fall back to loading the page when it cannot be shown here. */
async function switchTo(path, { push }) {
  if (view?.unsent && !window.confirm("Messages not sent yet will be lost. Switch rooms anyway?")) {
    // Back or forward has changed the address already: put back the one of the room still shown.
    if (!push) history.pushState(null, "", roomUrl(view.slug));
    return;
  }
  const number = ++navigation;
  const fetched = await fetchRoom(path);
  if (number !== navigation) return;
  if (!fetched) {
    location.assign(path);
    return;
  }
  drafts.set(view.slug, byId("composer-body").value);
  view.dispose();
  swapRoom(fetched.page);
  baseTitle = document.title;
  config = readConfig();
  if (push) history.pushState(null, "", fetched.path);
  else if (fetched.path !== location.pathname) history.replaceState(null, "", fetched.path);
  openRoom();
  byId("composer-body").focus();
}

// Why the server closed the socket for good, by close code (docs/protocol.md, Closing).
const FINAL_TEXTS = new Map([
  [4400, "This chat address is not valid."],
  [4401, "Your session ended (you logged out or it expired)."],
  [4429, "You have too many chat tabs open: close one."],
]);
const SESSION_ENDED_CODE = 4401;
const TOO_MANY_SOCKETS_CODE = 4429;

function closedForGood(code, detail) {
  closed = true;
  const text = code === TOO_MANY_SOCKETS_CODE && detail ? detail : FINAL_TEXTS.get(code) ?? "The chat closed this page's connection.";
  view?.end(text);
  const alert = byId("room-alert");
  if (code === SESSION_ENDED_CODE) {
    alert.append(" ", link("Log in again", alert.dataset.loginUrl));
  } else if (code === TOO_MANY_SOCKETS_CODE) {
    alert.append(" Then ", link("reload this page", location.href), ".");
  }
}

function link(text, href) {
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.textContent = text;
  return anchor;
}

document.addEventListener("click", (event) => {
  const path = roomPathOf(event);
  if (path === null || closed) return;
  event.preventDefault();
  if (path !== location.pathname) switchTo(path, { push: true });
});
window.addEventListener("popstate", () => {
  if (closed) location.reload();
  else switchTo(location.pathname, { push: false });
});

foldSidebarOnPhones(byId("room-sidebar"));
openRoom();
socket.open();
