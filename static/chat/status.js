// Words for each connection state; the state itself goes in data-state for styling.
const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  closed: "Disconnected",
};

/** Show a connection state in the status element. */
export function showStatus(element, state) {
  // role="status" announces every text change, so only change it when the state does.
  if (element.dataset.state === state) return;
  element.dataset.state = state;
  element.textContent = LABELS[state];
}
