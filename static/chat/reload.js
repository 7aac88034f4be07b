// Remembers, for this tab, the build it last reloaded itself for.
const RELOADED_FOR_KEY = "chat.reloadedForBuild";

/**
 * Reload the page when the server runs another build than the one it was served by; return whether it does.
 * canReload() says whether nothing the user wrote would be lost.
 */
export function reloadForNewBuild(build, servedBuild, canReload = () => true) {
  if (typeof build !== "string" || !servedBuild || build === servedBuild) return false;
  try {
    // Once per build: a page still served by an old process (a deploy half done) must not reload in a loop.
    if (sessionStorage.getItem(RELOADED_FOR_KEY) === build) return false;
    sessionStorage.setItem(RELOADED_FOR_KEY, build);
  } catch {
    return false; // Without storage nothing stops a loop.
  }
  if (!canReload()) return false;
  location.reload();
  return true;
}
