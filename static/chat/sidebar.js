// Below this width the sidebar sits above the messages, so its panels start folded.
const NARROW = "(max-width: 50rem)";

/** Fold the sidebar's panels on narrow screens, where they would push the conversation down. */
export function foldSidebarOnPhones(sidebar) {
  if (!window.matchMedia?.(NARROW).matches) return;
  for (const panel of sidebar.querySelectorAll("details")) panel.open = false;
}
