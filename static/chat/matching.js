// Pure matching of rooms against what the user typed, for the quick switcher (tested in node).

/** Return the rooms whose title or slug contains `typed` (any case), those that start with it first, then by title. */
export function matchRooms(rooms, typed, limit = 10) {
  const needle = typed.trim().toLocaleLowerCase();
  const scored = [];
  for (const room of rooms) {
    const title = room.title.toLocaleLowerCase();
    const slug = room.room.toLocaleLowerCase();
    if (needle === "") scored.push([1, room]);
    else if (title.startsWith(needle) || slug.startsWith(needle)) scored.push([0, room]);
    else if (title.includes(needle) || slug.includes(needle)) scored.push([1, room]);
  }
  // An empty box keeps the server's order: the most recently active first.
  if (needle !== "") scored.sort(([a, x], [b, y]) => a - b || x.title.localeCompare(y.title));
  return scored.slice(0, limit).map(([, room]) => room);
}
