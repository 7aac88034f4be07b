// How a message shows its files (docs/protocol.md, Attachment object).

// The box a thumbnail is shown in, in CSS pixels; its width and height are set before it loads, so nothing jumps.
const THUMBNAIL_BOX = 320;

/** Return the element of a message's attachments: thumbnails for images (full size on click), cards for files. */
export function attachmentsElement(attachments) {
  const list = document.createElement("ul");
  list.className = "attachments";
  for (const attachment of attachments) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = attachment.url;
    if (attachment.thumbnail_url && attachment.width && attachment.height) {
      link.className = "attachment attachment--image";
      link.target = "_blank";
      link.rel = "noopener";
      const image = document.createElement("img");
      const scale = Math.min(1, THUMBNAIL_BOX / Math.max(attachment.width, attachment.height));
      image.width = Math.round(attachment.width * scale);
      image.height = Math.round(attachment.height * scale);
      image.src = attachment.thumbnail_url;
      image.alt = attachment.name;
      image.loading = "lazy";
      link.append(image);
    } else {
      link.className = "attachment attachment--file";
      link.download = attachment.name;
      const name = document.createElement("span");
      name.className = "attachment__name";
      name.textContent = attachment.name;
      const details = document.createElement("span");
      details.className = "attachment__details";
      details.textContent = `${formatSize(attachment.size)} · ${attachment.content_type}`;
      link.append(name, details);
    }
    item.append(link);
    list.append(item);
  }
  return list;
}

/** Return a byte count as people read it: 512 B, 3.4 KB, 12 MB. */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const [value, unit] = bytes < 1024 * 1024 ? [bytes / 1024, "KB"] : [bytes / 1024 / 1024, "MB"];
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}
