// OpenAI chat completion bodies of an exact byte size: {"model":"smart","messages":[...]} (or another
// model; with "stream":true after the model for streaming requests) with a system prompt and alternating
// user/assistant turns of prose, lists and code, the last user turn padded so that the JSON is
// exactly the requested size. Deterministic for a given size.

interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

const WORDS = (
  "the a to of and in that is for it with as on be this by are from or at can an we not you have " +
  "function request response service cluster route model token latency error retry timeout header " +
  "body buffer stream policy provider target consumer gateway upstream downstream config deploy " +
  "database query index cache memory thread process queue message event handler client server " +
  "should would could please explain why how what when where which because however therefore " +
  "example value result output input return string number array object type interface class " +
  "performance benchmark measure improve reduce increase compare between before after during"
).split(" ");

const CODE = [
  'const client = new OpenAI({ baseURL: "https://gateway.example.com/v1" });\nconst res = await client.chat.completions.create({ model: "smart", messages });\nconsole.log(res.choices[0].message.content);',
  'def retry(fn, attempts=3):\n    for i in range(attempts):\n        try:\n            return fn()\n        except TimeoutError as e:\n            print(f"attempt {i} failed: {e}")\n    raise RuntimeError("gave up")',
  'SELECT user_id, COUNT(*) AS requests\nFROM usage\nWHERE created_at > NOW() - INTERVAL \'1 day\'\nGROUP BY user_id\nORDER BY requests DESC\nLIMIT 10;',
  '{\n  "name": "llm-router",\n  "replicas": 3,\n  "resources": { "cpu": "500m", "memory": "256Mi" }\n}',
];

const SYSTEM_PROMPT =
  "You are a helpful assistant for a platform engineering team. Answer concisely, show code when it helps, and say so when you are not sure.";

/** mulberry32: a small seeded PRNG so every run sends the same bodies. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

function sentence(rand: () => number): string {
  const n = 6 + Math.floor(rand() * 14);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(pick(rand, WORDS));
  const s = words.join(" ");
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}${pick(rand, [".", ".", ".", "?", "!"])}`;
}

/** Prose of about `chars` characters, with paragraphs, a list or a fenced code block now and then. */
function turnContent(rand: () => number, chars: number): string {
  let out = "";
  while (out.length < chars) {
    const r = rand();
    if (r < 0.08) out += `\n\n\`\`\`\n${pick(rand, CODE)}\n\`\`\`\n\n`;
    else if (r < 0.14) out += `\n- ${sentence(rand)}\n- ${sentence(rand)}\n- "${sentence(rand)}"\n`;
    else if (r < 0.24) out += `\n\n${sentence(rand)} `;
    else out += `${sentence(rand)} `;
  }
  return out.trim();
}

/** Plain ASCII text of exactly `chars` characters that JSON encodes without escapes. */
function filler(rand: () => number, chars: number): string {
  let out = "";
  while (out.length < chars) out += `${sentence(rand)} `;
  out = out.slice(0, chars);
  return chars > 1 ? `${out.slice(0, -1)}?` : out;
}

const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

/** A chat completion request for model "smart" (or `opts.model`) that is exactly `bytes` bytes of JSON. */
export function chatBody(bytes: number, opts: { stream?: boolean; model?: string } = {}): Buffer {
  const rand = prng(bytes);
  const model = opts.model ?? "smart";
  // Only a streaming request carries the field: the non-streaming body stays byte-identical to
  // earlier runs.
  const head = opts.stream ? { model, stream: true } : { model };
  const envelope = jsonBytes({ ...head, messages: [] });
  const lastTurnOverhead = jsonBytes({ role: "user", content: "" }) + 1;
  const messages: ChatMessage[] = [{ role: "system", content: SYSTEM_PROMPT }];
  let size = envelope + jsonBytes(messages[0]);
  // Leave room for a final user turn of at least `reserve` characters.
  const reserve = Math.min(400, Math.floor(bytes / 4));
  const maxTurn = Math.max(200, Math.min(6000, Math.floor(bytes / 4)));
  for (;;) {
    const role: ChatMessage["role"] = messages.length % 2 === 1 ? "user" : "assistant";
    const turn: ChatMessage = { role, content: turnContent(rand, 80 + Math.floor(rand() * maxTurn)) };
    const added = jsonBytes(turn) + 1;
    if (size + added + lastTurnOverhead + reserve > bytes) break;
    messages.push(turn);
    size += added;
  }
  // The last turn is the user's; drop a trailing user turn so the roles keep alternating.
  if (messages.length > 1 && messages[messages.length - 1]?.role === "user") size -= jsonBytes(messages.pop()) + 1;
  const pad = bytes - size - lastTurnOverhead;
  if (pad < 0) throw new Error(`cannot build a chat body of ${bytes} bytes`);
  messages.push({ role: "user", content: filler(rand, pad) });
  const body = Buffer.from(JSON.stringify({ ...head, messages }));
  if (body.length !== bytes) throw new Error(`chat body is ${body.length} bytes, wanted ${bytes}`);
  return body;
}
