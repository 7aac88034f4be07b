import { directUrl } from "./urls.js";

const form = document.getElementById("direct-form");
const input = document.getElementById("direct-username");

// There is no route that takes the name as a query, so the page builds the /dm/<username>/ path itself.
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const username = input.value.trim();
  if (username) location.assign(directUrl(username));
});
