// The demo page: sign in as a demo user at the fake IdP, list the tenant's jobs through the gateway
// with the JWT, and show them grouped by state_group. Covers are plain <img src=cover_image_url>:
// signed gateway links that need no Authorization header. The token stays in this page's memory.
"use strict";

const GROUPS = [
  ["waiting_upload", "Waiting for upload", "#64748b"],
  ["verifying", "Verifying", "#0ea5e9"],
  ["verify_failed", "Verification failed", "#ef4444"],
  ["training", "Training", "#4f46e5"],
  ["waiting_user_confirm", "Awaiting confirmation", "#f59e0b"],
  ["rejected", "Rejected", "#e11d48"],
  ["completed", "Completed", "#16a34a"],
  ["suspended", "Suspended", "#a855f7"],
  ["unknown", "Other", "#94a3b8"],
];
const AVATAR_COLOURS = ["#4f46e5", "#0891b2", "#16a34a", "#d97706", "#db2777"];
const PAGE_SIZE = 100;

const $ = (id) => document.getElementById(id);
let config = null;

function setStatus(state, text, error) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
  if (error) status.dataset.errorName = error.name;
}

async function signIn(user) {
  setStatus("loading", `Signing in as ${user.username}…`);
  const response = await fetch(config.token_url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username: user.username }),
  });
  if (!response.ok) throw new Error(`the identity provider answered ${response.status}`);
  return (await response.json()).access_token;
}

async function listJobs(token) {
  const jobs = [];
  for (let offset = 0; ; offset += PAGE_SIZE) {
    const url = new URL("/v1/training-jobs", config.gateway);
    url.search = new URLSearchParams({ limit: PAGE_SIZE, offset, sort_key: "create_time", sort_dir: "desc" });
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`);
    jobs.push(...body.jobs);
    if (body.jobs.length === 0 || jobs.length >= body.count) return jobs;
  }
}

function card(job, colour) {
  const node = $("card").content.firstElementChild.cloneNode(true);
  node.dataset.jobId = job.job_id;
  node.style.setProperty("--group", colour);
  node.querySelector(".name").textContent = job.name || job.job_id;
  const created = job.create_time ? new Date(job.create_time).toLocaleDateString() : "";
  node.querySelector(".meta").textContent = [job.model_resolution, job.model_version, created].filter(Boolean).join(" · ");
  const tags = node.querySelector(".tags");
  for (const tag of job.tags || []) tags.append(Object.assign(document.createElement("span"), { textContent: tag }));
  if (job.cover_image_url) {
    const img = node.querySelector("img");
    img.alt = `Cover of ${job.name || job.job_id}`;
    img.src = new URL(job.cover_image_url, config.gateway).href; // absolute already when public_base_url is set
  }
  return node;
}

function render(jobs) {
  const groups = $("groups");
  const summary = $("summary");
  groups.replaceChildren();
  summary.replaceChildren();
  for (const [group, label, colour] of GROUPS) {
    const members = jobs.filter((job) => (job.state_group || "unknown") === group);
    if (members.length === 0) continue;
    const section = document.createElement("section");
    section.className = "group";
    section.id = `group-${group}`;
    section.dataset.group = group;
    section.style.setProperty("--group", colour);
    const heading = document.createElement("h2");
    heading.append(label, Object.assign(document.createElement("span"), { className: "count", textContent: members.length }));
    const grid = document.createElement("div");
    grid.className = "grid";
    grid.append(...members.map((job) => card(job, colour)));
    section.append(heading, grid);
    groups.append(section);
    const link = Object.assign(document.createElement("a"), { href: `#group-${group}` });
    link.style.setProperty("--group", colour);
    link.append(Object.assign(document.createElement("span"), { className: "dot" }), label);
    link.append(Object.assign(document.createElement("b"), { textContent: members.length }));
    summary.append(link);
  }
  summary.hidden = jobs.length === 0;
}

async function open(user) {
  $("sign-in").hidden = true;
  try {
    const token = await signIn(user);
    setStatus("loading", `Loading ${user.tenant}'s training jobs…`);
    const jobs = await listJobs(token);
    $("who-name").textContent = user.username;
    $("who-tenant").textContent = user.tenant;
    $("who").hidden = false;
    render(jobs);
    const covers = jobs.filter((job) => job.cover_image_url).length;
    setStatus("ready", `${jobs.length} jobs, ${covers} with a cover. Signed in with a JWT; covers load as plain <img> links.`);
  } catch (error) {
    setStatus("error", `Could not load the jobs: ${error.message}`, error);
    $("sign-in").hidden = false;
  }
}

function signOut() {
  $("who").hidden = true;
  $("summary").hidden = true;
  $("groups").replaceChildren();
  $("sign-in").hidden = false;
  setStatus("idle", "");
}

function userButton(user, index) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "user";
  button.dataset.username = user.username;
  const avatar = Object.assign(document.createElement("span"), { className: "avatar", textContent: user.username[0] });
  avatar.style.background = AVATAR_COLOURS[index % AVATAR_COLOURS.length];
  const text = document.createElement("span");
  text.append(Object.assign(document.createElement("strong"), { textContent: user.username }));
  text.append(Object.assign(document.createElement("small"), { textContent: `tenant ${user.tenant}` }));
  button.append(avatar, text);
  button.addEventListener("click", () => open(user));
  return button;
}

async function start() {
  config = await (await fetch("config.json")).json();
  $("users").replaceChildren(...config.users.map(userButton));
  $("sign-out").addEventListener("click", signOut);
}

start().catch((error) => setStatus("error", `Could not start: ${error.message}`, error));
