import { roomUrl } from "./urls.js";

/**
 * A live list of the user's rooms (the room page's sidebar, the lobby's "Your rooms"), kept by the socket's user
 * events: unread badges, the most recently active room first, rooms added and removed. The room the tab shows
 * counts as unread only while the tab is hidden.
 */
export class RoomList {
  // slug -> { element, unread, lastSeq }
  #rooms = new Map();
  #current = null;

  /**
   * render(summary) builds a new item with a `[data-room]` and the room's link; badgeIn is the selector of the part of
   * an item its badge goes in (the item itself when null); empty is shown instead of the list when it has no room;
   * others is a list of rooms the user is not in, from which a room they join is taken; onChange() runs after changes.
   */
  constructor(list, { username, render, badgeIn = null, empty = null, others = null, onChange = () => {} }) {
    this.list = list;
    this.username = username;
    this.render = render;
    this.badgeIn = badgeIn;
    this.empty = empty;
    this.others = others;
    this.onChange = onChange;
    for (const element of list.querySelectorAll("[data-room]")) {
      const { room, unread, lastSeq } = element.dataset;
      this.#rooms.set(room, { element, unread: Number(unread) || 0, lastSeq: Number(lastSeq) || 0 });
    }
    document.addEventListener("visibilitychange", () => this.#changed());
  }

  /** Return the number of unread messages over the rooms, for the tab title. */
  get unread() {
    let total = 0;
    for (const [slug, room] of this.#rooms) if (!this.#looking(slug)) total += room.unread;
    return total;
  }

  /** Note the room the tab shows (null for none): its link is marked current and carries no badge. */
  show(slug) {
    this.#current = slug;
    for (const [other, { element }] of this.#rooms) {
      const link = element.querySelector("a");
      if (other === slug) link?.setAttribute("aria-current", "page");
      else link?.removeAttribute("aria-current");
    }
    this.#changed();
  }

  /** Apply the hello's rooms: update every one, in the order given, most recently active first. */
  replace(summaries) {
    let previous = null;
    for (const summary of summaries) {
      const room = this.#entry(summary);
      if (!room) continue;
      room.unread = summary.unread;
      room.lastSeq = summary.last_seq;
      if (previous === null) this.list.prepend(room.element);
      else previous.after(room.element);
      previous = room.element;
    }
    this.#changed();
  }

  /** Add a room the user became a member of. */
  add(summary) {
    const room = this.#entry(summary);
    if (!room) return;
    room.unread = summary.unread;
    room.lastSeq = Math.max(room.lastSeq, summary.last_seq);
    if (summary.last_message_at) this.list.prepend(room.element);
    this.#changed();
  }

  /** Take off a room the user was removed from. */
  remove(slug) {
    this.#rooms.get(slug)?.element.remove();
    this.#rooms.delete(slug);
    this.#changed();
  }

  /** Apply a room's new name or archived state (a room_changed): an archived room leaves the lists. */
  changed({ room: slug, name, archived }) {
    if (archived) {
      this.others?.querySelector(`[data-room="${CSS.escape(slug)}"]`)?.remove();
      if (this.#rooms.has(slug)) this.remove(slug);
      return;
    }
    const link = this.#rooms.get(slug)?.element.querySelector("a");
    if (link && typeof name === "string") link.textContent = name;
  }

  /** Count a new message of one of the rooms (a room_activity, or a message of the room shown); repeats are ignored. */
  activity({ room: slug, seq, author }) {
    const room = this.#rooms.get(slug);
    // The hello may already count it, and each tab of the user gets the same events.
    if (!room || !Number.isInteger(seq) || seq <= room.lastSeq) return;
    room.lastSeq = seq;
    if (author !== this.username && !this.#looking(slug)) room.unread += 1;
    this.list.prepend(room.element);
    this.#changed();
  }

  /** Apply a moved read marker: `unread` is what the server says is left. */
  read({ room: slug, unread }) {
    const room = this.#rooms.get(slug);
    if (!room || !Number.isInteger(unread)) return;
    room.unread = unread;
    this.#changed();
  }

  #looking(slug) {
    return slug === this.#current && document.visibilityState === "visible";
  }

  /** Return the entry of a room summary, building its item when the list does not have it yet. */
  #entry(summary) {
    if (typeof summary?.room !== "string") return null;
    let room = this.#rooms.get(summary.room);
    if (!room) {
      const element = this.render(summary);
      element.dataset.room = summary.room;
      this.list.append(element);
      room = { element, unread: 0, lastSeq: 0 };
      this.#rooms.set(summary.room, room);
      this.others?.querySelector(`[data-room="${CSS.escape(summary.room)}"]`)?.remove();
      if (summary.room === this.#current) element.querySelector("a")?.setAttribute("aria-current", "page");
    }
    return room;
  }

  #changed() {
    for (const [slug, room] of this.#rooms) this.#badge(room, slug === this.#current ? 0 : room.unread);
    this.list.hidden = this.#rooms.size === 0;
    if (this.empty) this.empty.hidden = this.#rooms.size > 0;
    this.onChange();
  }

  #badge({ element }, count) {
    let badge = element.querySelector(".badge");
    if (count <= 0) {
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      (this.badgeIn ? element.querySelector(this.badgeIn) : element).append(badge);
    }
    const text = String(count);
    if (badge.firstChild?.textContent !== text) {
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = " unread";
      badge.replaceChildren(text, hidden);
    }
  }
}

/** Return a link to a room, with its title. */
export function roomLink(summary, className) {
  const link = document.createElement("a");
  link.className = className;
  link.href = roomUrl(summary.room);
  link.textContent = summary.title;
  return link;
}

/** Show the unread count in the tab title, as "(3) general · Chat". */
export function titleWithCount(base, count) {
  return count > 0 ? `(${count}) ${base}` : base;
}
