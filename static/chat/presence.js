import { directUrl } from "./urls.js";

/** The list of users online in the room, as the server's view and presence frames tell it. */
export class OnlineList {
  #users = new Set();

  constructor(list, count, username) {
    this.list = list;
    this.count = count;
    this.username = username;
  }

  /** Start again from a welcome's full list: after a reconnect, joins and leaves may have been missed. */
  replace(users) {
    this.#users = new Set(Array.isArray(users) ? users.filter((user) => typeof user === "string") : []);
    this.#render();
  }

  /** Apply a presence frame: the users now online and those now offline, drawn once. */
  change(online, offline) {
    for (const user of online) if (typeof user === "string") this.#users.add(user);
    for (const user of offline) this.#users.delete(user);
    this.#render();
  }

  #render() {
    const users = [...this.#users].sort((a, b) => a.localeCompare(b));
    this.list.replaceChildren(...users.map((user) => this.#item(user)));
    this.count.textContent = String(users.length);
  }

  #item(user) {
    const item = document.createElement("li");
    item.className = "people__item";
    if (user === this.username) {
      item.textContent = `${user} (you)`;
    } else {
      const link = document.createElement("a");
      link.href = directUrl(user);
      link.textContent = user;
      item.append(link);
    }
    return item;
  }
}
