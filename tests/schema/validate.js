// Validates the documents run-schema-check produced against go-choria's protocol v1 JSON
// schemas (draft-04) with ajv. <schema>-<n>.json must be valid, <schema>-invalid-<n>.json must
// be rejected. Usage: node validate.js SCHEMA_DIR DOC_DIR
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv = require('ajv-draft-04');

const [schemaDir, docDir] = process.argv.slice(2);
if (!schemaDir || !docDir) {
  console.error('usage: node validate.js SCHEMA_DIR DOC_DIR');
  process.exit(2);
}

// The upstream schemas use tuple-form "items" without additionalItems; strict mode would
// refuse to compile them, and they are upstream's files, used unchanged.
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = {};
function validatorFor(name) {
  if (!validators[name]) {
    const schema = JSON.parse(fs.readFileSync(path.join(schemaDir, `${name}.json`), 'utf8'));
    // Some upstream files say ".../draft-04/schema" without the '#' ajv registers.
    schema.$schema = 'http://json-schema.org/draft-04/schema#';
    validators[name] = ajv.compile(schema);
  }
  return validators[name];
}

let passed = 0;
let failed = 0;
const seen = {};
const files = fs.readdirSync(docDir).filter((f) => f.endsWith('.json')).sort();
for (const file of files) {
  const match = /^([a-z_]+)-(invalid-)?\d+\.json$/.exec(file);
  if (!match) {
    console.log(`FAIL ${file}: unexpected file name`);
    failed++;
    continue;
  }
  const [, name, invalid] = match;
  const expectValid = !invalid;
  seen[name] = seen[name] || { valid: 0, invalid: 0 };
  seen[name][expectValid ? 'valid' : 'invalid']++;
  let ok;
  let detail = '';
  try {
    const doc = JSON.parse(fs.readFileSync(path.join(docDir, file), 'utf8'));
    const validate = validatorFor(name);
    const valid = validate(doc);
    ok = valid === expectValid;
    if (!valid) detail = ajv.errorsText(validate.errors);
  } catch (e) {
    ok = false;
    detail = e.message;
  }
  if (ok) {
    passed++;
    if (process.env.VERBOSE) console.log(`ok   ${file}${detail ? ` (rejected: ${detail})` : ''}`);
  } else {
    failed++;
    const want = expectValid ? 'valid' : 'invalid';
    console.log(`FAIL ${file}: expected ${want}; ${detail || 'accepted'}`);
  }
}

// Every schema must be exercised both ways, or the check proves nothing about it.
for (const name of ['transport', 'secure_request', 'secure_reply', 'request', 'reply']) {
  const s = seen[name] || { valid: 0, invalid: 0 };
  if (s.valid === 0 || s.invalid === 0) {
    console.log(`FAIL ${name}: needs valid and invalid documents (have ${s.valid}/${s.invalid})`);
    failed++;
  }
}

console.log(`schema: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
