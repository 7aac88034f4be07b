import { Notifier } from "./notify.js";
import { reloadForNewBuild } from "./reload.js";
import { RoomList, roomLink, titleWithCount } from "./rooms.js";
import { ChatSocket } from "./socket.js";

// The lobby: the user's rooms kept live by the tab's socket, and online counts refreshed while it is looked at.

// Online counts and the public rooms have no event of their own (a user is in many rooms): reload them this often.
const REFRESH_MS = 30_000;

const byId = (id) => document.getElementById(id);
const lobby = document.querySelector(".lobby");
const config = JSON.parse(byId("lobby-config").textContent);
const baseTitle = document.title;

const rooms = new RoomList(byId("my-rooms"), {
  username: config.username,
  render: itemFor,
  badgeIn: ".room-list__name",
  empty: byId("my-rooms-empty"),
  others: byId("public-room-list"),
  onChange: () => {
    document.title = titleWithCount(baseTitle, rooms.unread);
  },
});
const notifier = new Notifier({
  region: byId("toasts"),
  enableButton: byId("enable-notifications"),
  currentRoom: () => undefined,
});

const handlers = new Map([
  ["hello", (frame) => {
    if (reloadForNewBuild(frame.build, config.build)) return;
    rooms.replace(frame.rooms ?? []);
    lobby.dataset.synced = "true";
  }],
  ["room_activity", (frame) => rooms.activity(frame)],
  ["room_read", (frame) => rooms.read(frame)],
  ["room_added", (frame) => {
    rooms.add(frame.room);
    notifier.added(frame);
  }],
  ["room_removed", ({ room }) => rooms.remove(room)],
  ["room_changed", (frame) => rooms.changed(frame)],
  ["notification", (frame) => notifier.notify(frame)],
]);

const SESSION_ENDED_CODE = 4401;
const socket = new ChatSocket(config.wsPath, {
  onFrame: (frame) => handlers.get(frame.type)?.(frame),
  // Until the next hello, what changed while away is not shown.
  onStatus: (state) => {
    if (state !== "connected") lobby.dataset.synced = "false";
  },
  // The page then shows the login form (or says why it cannot connect).
  onFinalClose: (code) => {
    if (code === SESSION_ENDED_CODE) location.reload();
  },
  heartbeatMs: config.heartbeatMs,
});

/** Build the item of a room the user just joined, as the server renders one. */
function itemFor(summary) {
  const item = document.createElement("li");
  item.className = "room-list__item";
  const name = document.createElement("span");
  name.className = "room-list__name";
  name.append(roomLink(summary, "room-list__link"));
  if (summary.direct || summary.private) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = summary.direct ? "DM" : "🔒 Private";
    name.append(" ", tag);
  }
  const meta = document.createElement("span");
  meta.className = "room-list__meta";
  item.append(name, meta);
  return item;
}

/** Take the online counts and the public rooms from a fresh copy of this page. */
async function refresh() {
  if (document.visibilityState !== "visible") return;
  let page;
  try {
    const response = await fetch(location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    page = new DOMParser().parseFromString(await response.text(), "text/html");
  } catch {
    return;
  }
  for (const fresh of page.querySelectorAll("#my-rooms [data-room]")) {
    const meta = byId("my-rooms").querySelector(`[data-room="${CSS.escape(fresh.dataset.room)}"] .room-list__meta`);
    if (meta) meta.textContent = fresh.querySelector(".room-list__meta").textContent;
  }
  const publicRooms = page.getElementById("public-rooms");
  if (publicRooms) {
    // Rooms the user joined in the meantime stay out, as RoomList took them out.
    for (const item of publicRooms.querySelectorAll("[data-room]")) {
      if (byId("my-rooms").querySelector(`[data-room="${CSS.escape(item.dataset.room)}"]`)) item.remove();
    }
    byId("public-rooms").replaceWith(document.adoptNode(publicRooms));
    rooms.others = byId("public-room-list");
  }
}

rooms.show(null);
setInterval(refresh, REFRESH_MS);
document.addEventListener("visibilitychange", refresh);
socket.open();
