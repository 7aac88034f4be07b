import { matchRooms } from "./matching.js";
import { roomUrl } from "./urls.js";

// The quick switcher: Ctrl+K (Cmd+K on a Mac) opens a box over the user's rooms and DMs, filtered as they type;
// arrows choose, Enter opens, Escape closes. The rooms come from /chat/rooms.json, fetched at each opening.

const ROOMS_URL = "/chat/rooms.json";
let dialog = null;

function build() {
  const element = document.createElement("dialog");
  element.className = "switcher";
  element.setAttribute("aria-label", "Jump to a room");
  const input = document.createElement("input");
  input.type = "text";
  input.className = "switcher__input";
  input.placeholder = "Jump to a room or person…";
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-controls", "switcher-list");
  input.setAttribute("aria-expanded", "true");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-label", "Room or person");
  const list = document.createElement("ul");
  list.id = "switcher-list";
  list.className = "switcher__list";
  list.setAttribute("role", "listbox");
  element.append(input, list);
  document.body.append(element);
  return { element, input, list, rooms: [], shown: [], active: 0 };
}

function render(state) {
  state.shown = matchRooms(state.rooms, state.input.value);
  state.active = Math.min(state.active, Math.max(state.shown.length - 1, 0));
  state.list.replaceChildren(...state.shown.map((room, index) => {
    const item = document.createElement("li");
    item.id = `switcher-option-${index}`;
    item.className = "switcher__option";
    item.setAttribute("role", "option");
    item.setAttribute("aria-selected", String(index === state.active));
    item.textContent = room.direct ? `@${room.title}` : room.title;
    item.addEventListener("mousedown", (event) => {
      event.preventDefault();
      go(state, room);
    });
    return item;
  }));
  if (state.shown.length) state.input.setAttribute("aria-activedescendant", `switcher-option-${state.active}`);
  else state.input.removeAttribute("aria-activedescendant");
}

function go(state, room) {
  state.element.close();
  // A click on a room link: the room page swaps rooms in place (app.js), other pages follow the link.
  const link = document.createElement("a");
  link.href = roomUrl(room.room);
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}

async function open() {
  dialog ??= build();
  const state = dialog;
  if (state.element.open) return;
  state.input.value = "";
  state.active = 0;
  state.element.showModal();
  state.input.focus();
  render(state);
  try {
    const response = await fetch(ROOMS_URL, { headers: { Accept: "application/json" } });
    if (response.ok) state.rooms = (await response.json()).rooms ?? [];
  } catch {
    // Offline: the rooms of the last opening are all there is.
  }
  render(state);
}

function keydown(event) {
  const state = dialog;
  if (!state?.element.open) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    state.active = (state.active + step + state.shown.length) % Math.max(state.shown.length, 1);
    render(state);
  } else if (event.key === "Enter") {
    event.preventDefault();
    const room = state.shown[state.active];
    if (room) go(state, room);
  }
}

document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
    event.preventDefault();
    open();
  }
});
document.addEventListener("keydown", keydown);
document.addEventListener("input", (event) => {
  if (dialog && event.target === dialog.input) {
    dialog.active = 0;
    render(dialog);
  }
});
const button = document.getElementById("switcher-open");
if (button) {
  button.hidden = false;
  button.addEventListener("click", open);
}
