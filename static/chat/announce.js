// A few lines are enough for a burst; older ones have been read out already.
const MAX_LINES = 3;

/** Read other people's new messages out to screen readers, through a polite live region. */
export class Announcer {
  constructor(region, username) {
    this.region = region;
    this.username = username;
  }

  /** Announce a live message, unless the user wrote it. */
  message({ author, body }) {
    if (author === this.username) return;
    const line = document.createElement("p");
    line.textContent = `${author}: ${body}`;
    this.region.append(line);
    while (this.region.children.length > MAX_LINES) this.region.firstElementChild.remove();
  }
}
