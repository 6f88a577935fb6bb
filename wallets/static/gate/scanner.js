/* The gate scanner page (templates/gate/scanner.html): the rear camera, jsQR decoding in the
   browser, one POST per scan to the page's check URL, and a full-screen answer.

   While an answer is on screen nothing is posted; once it clears (after a few seconds, or a
   tap) scanning resumes, so the same code shown again is posted again (and answered
   "already redeemed"). The QR's text is posted as it is: an asset number or a signed payload. */
(function () {
  "use strict";

  var root = document.getElementById("scanner");
  if (!root) return;
  var CHECK_URL = root.dataset.checkUrl;
  var CSRF = root.dataset.csrf;
  var TIME_ZONE = root.dataset.timeZone || undefined;
  var DEVICE_ID = root.dataset.deviceId;
  var SHOW_ACCEPTED_MS = 2500;
  var SHOW_REJECTED_MS = 4000;
  var FRAME_INTERVAL_MS = 120;
  var MAX_DECODE_WIDTH = 720;

  var REASONS = {
    unknown_code: "Unknown code",
    not_valid_yet: "Not valid yet",
    void: "Void: cancelled",
    wrong_date: "Wrong date",
    outside_slot: "Outside its time slot",
    already_redeemed: "Already redeemed",
    not_admitted_here: "Not admitted at this gate",
    test_ticket: "Test ticket"
  };

  var video = document.getElementById("camera");
  var cameraStatus = document.getElementById("camera-status");
  var answer = document.getElementById("answer");
  var manual = document.getElementById("manual");
  var codeInput = document.getElementById("code");
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var busy = false;          // a scan is being posted or its answer is on screen
  var clearTimer = null;

  function formatTime(iso) {
    var when = new Date(iso);
    if (isNaN(when.getTime())) return iso;
    var options = { hour: "2-digit", minute: "2-digit", timeZone: TIME_ZONE };
    var day = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: TIME_ZONE });
    var today = day.format(new Date()) === day.format(when);
    var time = new Intl.DateTimeFormat("en-GB", options).format(when);
    return today ? "today at " + time : day.format(when) + " at " + time;
  }

  function describeAsset(asset) {
    if (!asset) return "";
    var parts = [asset.name];
    if (asset.assetType === "ticket" && asset.admits) parts.push("admits " + asset.admits);
    parts.push(asset.visitDate + (asset.visitTime ? " " + asset.visitTime : ""));
    return parts.join(" · ");
  }

  function show(kind, verdict, reason, detail, assetText) {
    busy = true;
    answer.className = "answer " + kind;
    document.getElementById("verdict").textContent = verdict;
    document.getElementById("reason").textContent = reason || "";
    document.getElementById("detail").textContent = detail || "";
    document.getElementById("asset").textContent = assetText || "";
    answer.hidden = false;
    answer.focus();
    if (navigator.vibrate) navigator.vibrate(kind === "accepted" ? 80 : [200, 100, 200]);
    clearTimeout(clearTimer);
    clearTimer = setTimeout(clear, kind === "accepted" ? SHOW_ACCEPTED_MS : SHOW_REJECTED_MS);
  }

  function clear() {
    clearTimeout(clearTimer);
    answer.hidden = true;
    answer.className = "answer";
    busy = false;
  }

  function render(body) {
    if (body.result === "accepted") {
      var admits = body.asset && body.asset.assetType === "ticket" && body.asset.admits;
      show("accepted", "Accepted", admits && admits > 1 ? "Admit " + admits : "", "", describeAsset(body.asset));
      return;
    }
    var reason = REASONS[body.reason] || (body.reason ? body.reason.replace(/_/g, " ") : "Rejected");
    var detail = "";
    var previous = body.previousRedemption;
    if (body.reason === "already_redeemed" && previous) {
      var by = previous.deviceId === DEVICE_ID ? "this scanner" : (previous.deviceName || "another scanner");
      detail = formatTime(previous.at) + ", by " + by;
    } else if (body.asset && (body.reason === "wrong_date" || body.reason === "not_valid_yet" ||
                              body.reason === "outside_slot")) {
      detail = "Valid on " + body.asset.visitDate + (body.asset.visitTime ? " at " + body.asset.visitTime : "");
    }
    show("rejected", "Rejected", reason, detail, describeAsset(body.asset));
  }

  function post(code) {
    busy = true;
    fetch(CHECK_URL, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": CSRF },
      body: JSON.stringify({ code: code })
    }).then(function (response) {
      if (response.status === 401 || response.status === 403) {
        window.location.reload();  // logged out or revoked: the login page
        return null;
      }
      return response.json().then(function (body) {
        if (!response.ok) {
          show("failed", "Not checked", body.title || ("Error " + response.status), body.detail || "", "");
        } else {
          render(body);
        }
      });
    }).catch(function () {
      show("failed", "Not checked", "No answer from the server", "Check the network and scan again.", "");
    });
  }

  answer.addEventListener("click", clear);
  document.addEventListener("keydown", function (event) {
    if (!answer.hidden && (event.key === "Escape" || event.key === "Enter")) { event.preventDefault(); clear(); }
  });

  manual.addEventListener("submit", function (event) {
    event.preventDefault();
    var code = codeInput.value.trim();
    if (!code || busy) return;
    codeInput.value = "";
    codeInput.blur();
    post(code);
  });

  function scanFrame() {
    if (!busy && video.readyState >= video.HAVE_ENOUGH_DATA && video.videoWidth && window.jsQR) {
      var scale = Math.min(1, MAX_DECODE_WIDTH / video.videoWidth);
      var width = Math.round(video.videoWidth * scale);
      var height = Math.round(video.videoHeight * scale);
      if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
      context.drawImage(video, 0, 0, width, height);
      var image = context.getImageData(0, 0, width, height);
      var found = window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" });
      if (found && found.data) post(found.data);
    }
    setTimeout(scanFrame, FRAME_INTERVAL_MS);
  }

  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraStatus.textContent = "No camera here (the page needs HTTPS). Type the number below.";
      return;
    }
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (stream) {
      video.srcObject = stream;
      return video.play();
    }).then(function () {
      cameraStatus.textContent = "";
      root.dataset.camera = "on";
      scanFrame();
    }).catch(function (error) {
      cameraStatus.textContent = "Camera unavailable (" + (error && error.name || "error") + "). Type the number below.";
    });
  }

  // Keep the screen on while scanning, where the browser allows it.
  if (navigator.wakeLock && navigator.wakeLock.request) {
    navigator.wakeLock.request("screen").catch(function () {});
  }
  startCamera();
})();
