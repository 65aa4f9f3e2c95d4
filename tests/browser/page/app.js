// Lists the jobs with fetch() + Authorization (a CORS preflight), then loads each cover through the
// gateway's stable cover path: an <img src> cannot send Authorization, so fetch it (the gateway answers
// 302 to the pre-signed OBS URL, which the browser follows) and show the blob.
"use strict";

const settings = new URLSearchParams(location.hash.slice(1));
const gateway = settings.get("gateway");
const auth = { Authorization: `Bearer ${settings.get("key")}` };
const status = document.getElementById("status");

async function getOk(path) {
  const response = await fetch(new URL(path, gateway), { headers: auth });
  if (!response.ok) {
    throw new Error(`GET ${path}: HTTP ${response.status}`);
  }
  return response;
}

async function showCover(img, coverPath) {
  const blob = await (await getOk(coverPath)).blob();
  img.src = URL.createObjectURL(blob);
  await img.decode();
}

async function main() {
  const { jobs } = await (await getOk("/v1/training-jobs")).json();
  const covers = [];
  for (const job of jobs) {
    const item = document.createElement("li");
    item.className = "job";
    item.dataset.jobId = job.job_id;
    if (job.cover_url) {
      const img = document.createElement("img");
      img.alt = `cover of ${job.name}`;
      item.append(img);
      covers.push(showCover(img, job.cover_url));
    }
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = job.name;
    item.append(name);
    document.getElementById("jobs").append(item);
  }
  await Promise.all(covers);
  status.textContent = `${jobs.length} jobs, ${covers.length} covers`;
  status.dataset.state = "ready";
}

main().catch((error) => {
  status.textContent = `Could not load jobs: ${error.name}: ${error.message}`;
  status.dataset.errorName = error.name;
  status.dataset.state = "error";
});
