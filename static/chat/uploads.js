/**
 * The composer's attachments: files chosen with its button, pasted or dropped upload at once, each with a
 * progress bar and Cancel; a refused one shows the server's reason. The message waits for them (settled()).
 */
export class Uploads {
  /**
   * `button`, `input` (type=file) and `list` are the elements named `${prefix}-attach`, `-files` and `-uploads`;
   * `url` takes the files (POST /chat/<slug>/uploads/), with the page's CSRF token.
   */
  constructor({ byId, prefix, form, textarea, url, csrfToken }) {
    const [button, input, list] = ["attach", "files", "uploads"].map((name) => byId(`${prefix}-${name}`));
    this.list = list;
    this.url = url;
    this.csrfToken = csrfToken;
    this.items = new Set();
    this.waiters = [];
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.addAll(input.files);
      input.value = "";
    });
    textarea.addEventListener("paste", (event) => {
      const files = event.clipboardData?.files;
      if (!files?.length) return;
      // A pasted image arrives as a file only; text pastes go on as usual.
      event.preventDefault();
      this.addAll(files);
    });
    form.addEventListener("dragover", (event) => {
      if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
    });
    form.addEventListener("drop", (event) => {
      if (!event.dataTransfer?.files.length) return;
      event.preventDefault();
      this.addAll(event.dataTransfer.files);
    });
  }

  addAll(files) {
    for (const file of files) this.add(file);
  }

  /** Start uploading one file, shown in the composer until the message is sent or it is removed. */
  add(file) {
    const element = document.createElement("li");
    element.className = "upload";
    const name = document.createElement("span");
    name.className = "upload__name";
    name.textContent = file.name || "pasted image";
    const progress = document.createElement("progress");
    progress.className = "upload__progress";
    progress.max = 1;
    progress.value = 0;
    const state = document.createElement("span");
    state.className = "upload__state";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "button button--small button--quiet upload__remove";
    remove.textContent = "Cancel";
    element.append(name, " ", progress, state, remove);
    this.list.append(element);
    this.list.hidden = false;

    const item = { element, attachment: null, xhr: new XMLHttpRequest() };
    this.items.add(item);
    const { xhr } = item;
    const done = () => {
      item.xhr = null;
      this.#wake();
    };
    remove.addEventListener("click", () => {
      item.xhr?.abort();
      this.#drop(item);
    });
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = event.loaded / event.total;
    };
    xhr.onload = () => {
      const answer = parseJson(xhr.responseText);
      if (xhr.status === 201 && answer?.id) {
        item.attachment = answer;
        progress.value = 1;
        element.classList.add("upload--done");
        remove.textContent = "Remove";
      } else {
        this.#fail(item, answer?.detail || `The upload failed (${xhr.status}).`);
      }
      done();
    };
    xhr.onerror = () => {
      this.#fail(item, "The upload failed: the connection was lost.");
      done();
    };
    xhr.onabort = done;
    const body = new FormData();
    body.append("file", file, file.name || "pasted-image");
    xhr.open("POST", this.url);
    xhr.setRequestHeader("X-CSRFToken", this.csrfToken);
    xhr.send(body);
  }

  /** Return a promise of the uploaded files' ids once no upload is still running. */
  settled() {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.#wake();
    });
  }

  /** Wait for the running uploads; return the ids of those that made it, which leave the composer with the message. */
  async take() {
    const ids = await this.settled();
    for (const item of [...this.items]) if (ids.includes(item.attachment?.id)) this.#drop(item);
    return ids;
  }

  get count() {
    return this.items.size;
  }

  #fail(item, detail) {
    item.element.classList.add("upload--failed");
    item.element.querySelector(".upload__state").textContent = detail;
    item.element.querySelector(".upload__remove").textContent = "Remove";
  }

  #drop(item) {
    this.items.delete(item);
    item.element.remove();
    this.list.hidden = this.items.size === 0;
    this.#wake();
  }

  #wake() {
    if ([...this.items].some((item) => item.xhr)) return;
    const ids = [...this.items].filter((item) => item.attachment).map((item) => item.attachment.id);
    for (const resolve of this.waiters.splice(0)) resolve(ids);
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
