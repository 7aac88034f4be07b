// Link preview cards under a message: the page's title, description and thumbnail, all as text or a same-site image.

/** Return whether `url` may be a card's link: http and https only, whatever a server ever sends. */
export function isWebLink(url) {
  return /^https?:\/\//i.test(String(url));
}

/** Return whether `path` is an image on this site (a thumbnail the server re-encoded), never another origin's. */
export function isLocalImage(path) {
  return typeof path === "string" && path.startsWith("/") && !path.startsWith("//") && !path.startsWith("/\\");
}

/** Return the cards of a message's previews; with onRemove(url), each has a button that removes it (its author's). */
export function previewsElement(message, onRemove) {
  const cards = document.createElement("div");
  cards.className = "previews";
  for (const { url, title, description, image } of message.previews ?? []) {
    if (!isWebLink(url)) continue;
    const card = document.createElement("div");
    card.className = "preview";
    const link = document.createElement("a");
    link.className = "preview__link";
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    if (isLocalImage(image)) {
      const picture = document.createElement("img");
      picture.className = "preview__image";
      picture.src = image;
      picture.alt = "";
      picture.loading = "lazy";
      link.append(picture);
    }
    const text = document.createElement("span");
    text.className = "preview__text";
    text.append(textSpan("preview__title", title || url), textSpan("preview__host", new URL(url).host));
    if (description) text.append(textSpan("preview__description", description));
    link.append(text);
    card.append(link);
    if (onRemove) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "preview__remove button button--small button--quiet";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove the preview of ${title || url}`);
      remove.addEventListener("click", () => onRemove(url));
      card.append(remove);
    }
    cards.append(card);
  }
  return cards;
}

function textSpan(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}
