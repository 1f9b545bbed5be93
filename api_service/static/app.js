// The page: talks to the JSON API on its own origin, PUTs files straight to S3 through the
// presigned URL, follows a video's progress through its events_url (Server-Sent Events) and
// plays the result with hls.js. No framework: a few functions over the DOM.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "video-platform.token";
const EMAIL_KEY = "video-platform.email";

const state = { token: localStorage.getItem(TOKEN_KEY), signUp: false, file: null, events: null, hls: null };

// ------------------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && state.token) signOut();
    throw new ApiError(response.status, data?.error?.message ?? `${response.status} ${response.statusText}`);
  }
  return data;
}

function showError(element, error) {
  element.textContent = error ? String(error.message ?? error) : "";
  element.hidden = !error;
}

// ------------------------------------------------------------------------------ account

function renderAccount() {
  const signedIn = Boolean(state.token);
  $("auth").hidden = signedIn;
  $("workspace").hidden = !signedIn;
  $("account").hidden = !signedIn;
  $("account-name").textContent = localStorage.getItem(EMAIL_KEY) ?? "";
  if (signedIn) loadVideos();
}

function setAuthMode(signUp) {
  state.signUp = signUp;
  $("auth-title").textContent = signUp ? "Create an account" : "Sign in";
  $("auth-submit").textContent = signUp ? "Create account" : "Sign in";
  $("nickname-row").hidden = !signUp;
  $("auth-password").autocomplete = signUp ? "new-password" : "current-password";
  $("auth-switch-text").textContent = signUp ? "Have an account?" : "New here?";
  $("auth-switch").textContent = signUp ? "Sign in" : "Create an account";
  showError($("auth-error"), null);
}

async function submitAuth(event) {
  event.preventDefault();
  const email = $("auth-email").value.trim();
  const password = $("auth-password").value;
  $("auth-submit").disabled = true;
  try {
    if (state.signUp) {
      const nickname = $("auth-nickname").value.trim() || email.split("@")[0];
      await api("POST", "/api/v1/users/register", { nickname, email, password });
    }
    const { token } = await api("POST", "/api/v1/users/login", { email, password });
    state.token = token;
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(EMAIL_KEY, email);
    renderAccount();
  } catch (error) {
    showError($("auth-error"), error);
  } finally {
    $("auth-submit").disabled = false;
  }
}

function signOut() {
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
  stopFollowing();
  renderAccount();
}

// ------------------------------------------------------------------------------ upload

function chooseFile(file) {
  state.file = file ?? null;
  $("file-label").textContent = file ? `${file.name} · ${formatBytes(file.size)}` : "Choose a video or drop it here";
  $("upload-button").disabled = !file;
}

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// XMLHttpRequest, not fetch: only XHR reports upload progress.
function putFile(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve()
      : reject(new Error(`storage refused the upload (HTTP ${xhr.status})`)));
    xhr.onerror = () => reject(new Error("the upload failed (network or CORS error)"));
    xhr.send(file);
  });
}

function setUploadProgress(loaded, total) {
  const percent = total ? Math.floor((loaded / total) * 100) : 0;
  $("upload-progress").value = percent;
  $("upload-percent").textContent = `${percent} %`;
  $("upload-bytes").textContent = `${formatBytes(loaded)} of ${formatBytes(total)}`;
}

async function upload() {
  const file = state.file;
  if (!file) return;
  showError($("upload-error"), null);
  $("upload-button").disabled = true;
  $("upload-meter").hidden = false;
  $("upload-label").textContent = "Uploading";
  setUploadProgress(0, file.size);
  try {
    const title = $("title-input").value.trim() || undefined;
    const initiated = await api("POST", "/api/v1/videos/upload/initiate", {
      file_name: file.name, title, size: file.size, content_type: file.type || undefined,
    });
    await putFile(initiated.upload_url, file, setUploadProgress);
    setUploadProgress(file.size, file.size);
    $("upload-label").textContent = "Uploaded";
    await api("POST", "/api/v1/videos/upload/complete", { video_id: initiated.video_id });
    const video = await api("GET", `/api/v1/videos/${initiated.video_id}`);
    openVideo(video);
    loadVideos();
    chooseFile(null);
    $("file-input").value = "";
    $("title-input").value = "";
  } catch (error) {
    $("upload-label").textContent = "Upload failed";
    showError($("upload-error"), error);
  } finally {
    $("upload-button").disabled = !state.file;
  }
}

// ------------------------------------------------------------------------------ one video

function stopFollowing() {
  if (state.events) { state.events.close(); state.events = null; }
  if (state.hls) { state.hls.destroy(); state.hls = null; }
}

function setStatus(status, progress) {
  $("status").textContent = status;
  $("status").dataset.status = status;
  const percent = Math.round(progress ?? 0);
  $("transcode-progress").value = percent;
  $("transcode-percent").textContent = `${percent} %`;
  $("transcode-meter").hidden = status !== "transcoding";
}

function showCover(url) {
  const cover = $("cover");
  if (!url || !$("player").hidden) return;
  cover.src = url;
  cover.hidden = false;
  $("placeholder").hidden = true;
}

function openVideo(video) {
  stopFollowing();
  $("stage").hidden = false;
  $("stage-title").textContent = video.title;
  $("player").hidden = true;
  $("controls").hidden = true;
  $("cover").hidden = true;
  $("placeholder").hidden = false;
  $("placeholder").textContent = "Waiting for the cover…";
  showError($("stage-error"), null);
  setStatus(video.status, video.progress);
  showCover(video.cover_url);
  if (video.status === "online") play(video);
  else if (video.status === "failed") fail(video);
  else follow(video);
}

// Live progress from the video's events_url. EventSource reconnects by itself with
// Last-Event-ID; the final event (online or failed) closes it.
function follow(video) {
  const events = new EventSource(video.events_url);
  state.events = events;
  const data = (e) => JSON.parse(e.data);
  events.addEventListener("status", (e) => { const d = data(e); setStatus(d.status, d.progress); });
  events.addEventListener("progress", (e) => { const d = data(e); setStatus(d.status, d.progress); });
  events.addEventListener("cover", (e) => showCover(data(e).cover_url));
  events.addEventListener("online", (e) => { events.close(); play(data(e)); loadVideos(); });
  events.addEventListener("failed", (e) => { events.close(); fail(data(e)); loadVideos(); });
  events.addEventListener("deleted", () => { events.close(); fail({ error: "the video was deleted" }); });
  // EventSource retries dropped connections itself; it gives up only on an error answer
  // (e.g. its token expired during a long transcode): then fetch a fresh events_url.
  events.onerror = () => {
    if (events.readyState !== EventSource.CLOSED || state.events !== events) return;
    setTimeout(async () => {
      if (state.events !== events) return;
      try { openVideo(await api("GET", `/api/v1/videos/${video.id}`)); } catch (error) { showError($("stage-error"), error); }
    }, 2000);
  };
}

function fail(video) {
  setStatus("failed", 0);
  showError($("stage-error"), video.error || "processing failed");
  $("placeholder").textContent = "No playback";
}

function play(video) {
  setStatus("online", 100);
  showCover(video.cover_url);
  if (!video.playback_url) return;
  const player = $("player");
  player.poster = video.cover_url ?? "";
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls();
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, () => { fillQualities(hls); player.play().catch(() => {}); });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, { level }) => {
      const current = hls.levels[level];
      $("level-info").textContent = current ? `playing ${current.height}p` : "";
    });
    hls.on(Hls.Events.ERROR, (_, info) => {
      if (info.fatal) showError($("stage-error"), `playback error: ${info.details}`);
    });
    hls.loadSource(video.playback_url);
    hls.attachMedia(player);
  } else if (player.canPlayType("application/vnd.apple.mpegurl")) {
    player.src = video.playback_url;  // Safari plays HLS natively
  } else {
    showError($("stage-error"), "this browser cannot play HLS (hls.js did not load)");
    return;
  }
  $("cover").hidden = true;
  $("placeholder").hidden = true;
  player.hidden = false;
}

function fillQualities(hls) {
  const select = $("quality");
  select.replaceChildren(new Option("Auto", "-1"));
  hls.levels
    .map((level, index) => ({ level, index }))
    .sort((a, b) => b.level.height - a.level.height)
    .forEach(({ level, index }) => select.add(new Option(`${level.height}p`, String(index))));
  select.value = "-1";
  $("controls").hidden = false;
}

// ------------------------------------------------------------------------------ my videos

async function loadVideos() {
  try {
    const { items } = await api("GET", "/api/v1/videos?limit=50");
    const list = $("videos");
    list.replaceChildren(...items.map(tile));
    $("videos-empty").hidden = items.length > 0;
  } catch (error) {
    showError($("upload-error"), error);
  }
}

function tile(video) {
  const item = document.createElement("li");
  item.className = "tile";
  item.dataset.videoId = video.id;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  if (video.cover_url) thumb.style.backgroundImage = `url("${video.cover_url}")`;
  else thumb.textContent = video.status === "failed" ? "failed" : "no cover yet";
  const body = document.createElement("div");
  body.className = "tile-body";
  const title = document.createElement("div");
  title.className = "tile-title";
  title.textContent = video.title;
  const meta = document.createElement("div");
  meta.className = "tile-meta";
  const pill = document.createElement("span");
  pill.className = "pill";
  pill.dataset.status = video.status;
  pill.textContent = video.status;
  const length = document.createElement("span");
  length.textContent = video.duration ? formatDuration(video.duration) : "";
  meta.append(pill, length);
  body.append(title, meta);
  item.append(thumb, body);
  item.addEventListener("click", async () => {
    openVideo(await api("GET", `/api/v1/videos/${video.id}`));
    $("stage").scrollIntoView({ behavior: "smooth", block: "start" });
  });
  return item;
}

function formatDuration(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// ------------------------------------------------------------------------------ wiring

function main() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-switch").addEventListener("click", () => setAuthMode(!state.signUp));
  $("sign-out").addEventListener("click", signOut);
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  $("upload-button").addEventListener("click", upload);
  $("refresh").addEventListener("click", loadVideos);
  $("quality").addEventListener("change", (e) => { if (state.hls) state.hls.currentLevel = Number(e.target.value); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    chooseFile(e.dataTransfer.files[0]);
  });
  setAuthMode(false);
  renderAccount();
}

main();
