const TIME_OF_DAY = { hour: "numeric", minute: "2-digit" };
const DAY_AND_TIME = { dateStyle: "medium", timeStyle: "short" };
const FULL = { dateStyle: "full", timeStyle: "medium" };

/** Return the short local time of a message: the time today, the date and time before. */
export function formatShort(date, now = new Date()) {
  if (Number.isNaN(date.getTime())) return "";
  const today = date.toDateString() === now.toDateString();
  return today ? date.toLocaleTimeString([], TIME_OF_DAY) : date.toLocaleString([], DAY_AND_TIME);
}

/** Return the full local date and time, for tooltips. */
export function formatFull(date) {
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], FULL);
}
