// Every format follows the viewer's locale and time zone: the server sends UTC.
const TIME_OF_DAY = { hour: "numeric", minute: "2-digit" };
const DAY = { weekday: "long", month: "long", day: "numeric" };
const DAY_OF_ANOTHER_YEAR = { ...DAY, year: "numeric" };
const FULL = { dateStyle: "full", timeStyle: "medium" };

/** Return the local time of day, as a message shows it under its day's heading. */
export function formatTime(date) {
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], TIME_OF_DAY);
}

/** Return a key naming the local calendar day of a date, or "" for an invalid one. */
export function dayKey(date) {
  if (Number.isNaN(date.getTime())) return "";
  const pad = (number) => String(number).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Return the heading of a local day: "Today", "Yesterday", or its date. */
export function formatDay(date, now = new Date()) {
  if (Number.isNaN(date.getTime())) return "";
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  return date.toLocaleDateString([], date.getFullYear() === now.getFullYear() ? DAY : DAY_OF_ANOTHER_YEAR);
}

/** Return the full local date and time, for tooltips. */
export function formatFull(date) {
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], FULL);
}
