// The parts of the room page that belong to the room shown; the rest (the rooms sidebar, toasts) stays.
const ROOM_PARTS = ["room-header", "room-members", "room-main", "room-config"];
const ROOM_PATH = /^\/(chat|dm)\/[^/]+\/$/u;

/** Return the same-origin room path a click on a link goes to, or null when the browser should follow it itself. */
export function roomPathOf(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
    return null;
  }
  const link = event.target.closest?.("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return null;
  const url = new URL(link.href, location.href);
  return url.origin === location.origin && ROOM_PATH.test(url.pathname) ? url.pathname : null;
}

/** Fetch a room page; return {path, page} (page a Document with a room-config), or null when it is not a room. */
export async function fetchRoom(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  } catch {
    return null;
  }
  if (!response.ok) return null;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  if (!page.getElementById("room-config")) return null;
  // A direct-message link lands on its room's address.
  return { path: new URL(response.url).pathname, page };
}

/** Put a fetched room page's room parts in place of the shown ones, and take its title. */
export function swapRoom(page) {
  for (const id of ROOM_PARTS) document.getElementById(id).replaceWith(document.adoptNode(page.getElementById(id)));
  document.title = page.title;
}
