// The page paths the scripts link to; they mirror chat/web/urls.py, which has no JavaScript twin.

/** Return the path of the direct-message page with a user: a link there goes to the conversation, or offers to start it. */
export const directUrl = (username) => `/dm/${encodeURIComponent(username)}/`;

/** Return the path of a room page. */
export const roomUrl = (slug) => `/chat/${encodeURIComponent(slug)}/`;

/** Return a message's permalink: the room page opened at that message. */
export const messageUrl = (slug, seq) => `${roomUrl(slug)}m/${seq}/`;

/** Return the path that takes a room's uploads (chat/web/files.py). */
export const uploadUrl = (slug) => `${roomUrl(slug)}uploads/`;
