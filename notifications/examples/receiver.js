// Receive ota_cm_order_processed webhooks: Node.js, no dependencies.
// Run: CM_WEBHOOK_SECRET=whsec_... node receiver.js [PORT], behind your HTTPS proxy.
const crypto = require("node:crypto");
const http = require("node:http");

const SECRET = process.env.CM_WEBHOOK_SECRET; // the subscription's secret
const TOLERANCE = 300; // seconds: a signature older (or newer) than this may be a replay
const seen = new Set(); // eventIds handled: keep them in your database, beside what you did with them

// CM-Signature is t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>.
function verified(header, body) {
  const parts = Object.fromEntries(header.split(",").map((part) => part.split("=", 2)));
  const t = parts.t || "";
  if (!/^\d+$/.test(t) || Math.abs(Date.now() / 1000 - Number(t)) > TOLERANCE) return false;
  const expected = Buffer.from(crypto.createHmac("sha256", SECRET).update(`${t}.`).update(body).digest("hex"));
  const given = Buffer.from(parts.v1 || "");
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks); // the raw bytes, as signed: verify before parsing
    if (request.method !== "POST" || !verified(request.headers["cm-signature"] || "", body)) {
      return response.writeHead(400).end("bad signature");
    }
    const event = JSON.parse(body);
    if (seen.has(event.eventId)) return response.writeHead(200).end("duplicate"); // at least once: don't redo
    try {
      const order = event.data.order;
      console.log("handled", event.eventId, order.orderId, order.status); // your work
    } catch (error) {
      return response.writeHead(500).end("failed"); // no 2xx: it comes again
    }
    seen.add(event.eventId); // only once done
    response.writeHead(200).end("ok");
  });
}).listen(Number(process.argv[2] || 9000), "127.0.0.1");
