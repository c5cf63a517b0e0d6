// Checks the project's Grafana dashboard: importable into Grafana 9+ (schemaVersion, a
// datasource variable and no hard-coded datasource uid), a "site" variable every query uses,
// and a query for every metric named on the command line.
// Usage: node check-dashboard.js DASHBOARD.json METRIC...
'use strict';
const fs = require('fs');

const [file, ...metrics] = process.argv.slice(2);
const dash = JSON.parse(fs.readFileSync(file, 'utf8'));
const errors = [];

if (!(dash.schemaVersion >= 36)) errors.push(`schemaVersion ${dash.schemaVersion} is older than Grafana 9's`);
if (!dash.uid || !dash.title) errors.push('no uid or title');
const vars = (dash.templating && dash.templating.list) || [];
const dsVar = vars.find((v) => v.type === 'datasource' && v.query === 'prometheus');
if (!dsVar) errors.push('no datasource variable of type prometheus');
const site = vars.find((v) => v.name === 'site' && v.type === 'query');
if (!site) errors.push('no "site" query variable');
const dsRef = dsVar ? `\${${dsVar.name}}` : '${datasource}';

// Every datasource reference is the variable: no uid of somebody's Grafana.
function walk(v, where) {
  if (Array.isArray(v)) return v.forEach((e, i) => walk(e, `${where}[${i}]`));
  if (v === null || typeof v !== 'object') return;
  for (const [k, val] of Object.entries(v)) {
    if (k === 'datasource' && val && typeof val === 'object' && val.type !== 'grafana' && val.uid !== dsRef) {
      errors.push(`${where}.datasource has uid ${JSON.stringify(val.uid)}, not ${dsRef}`);
    }
    if (k === 'datasource' && typeof val === 'string') errors.push(`${where}.datasource is the old string form`);
    walk(val, `${where}.${k}`);
  }
}
walk(dash, 'dashboard');

const exprs = [];
let ids = new Set();
for (const p of dash.panels || []) {
  if (ids.has(p.id)) errors.push(`panel id ${p.id} used twice`);
  ids.add(p.id);
  if (p.type === 'row') continue;
  if (!p.title || !p.gridPos) errors.push(`panel ${p.id} has no title or position`);
  for (const t of p.targets || []) {
    exprs.push(t.expr);
    if (!t.expr.includes('site=~"$site"')) errors.push(`panel "${p.title}" ignores $site: ${t.expr}`);
  }
}
for (const m of metrics) {
  const re = new RegExp(`\\b${m}(_sum|_count|_total)?\\b`);
  if (!exprs.some((e) => re.test(e))) errors.push(`no panel shows ${m}`);
}
if (errors.length) {
  errors.forEach((e) => console.log(`dashboard: ${e}`));
  process.exit(1);
}
console.log(`ok   dashboard: schemaVersion ${dash.schemaVersion}, ${exprs.length} queries, every one of ${metrics.length} metrics shown, datasource and site variables`);
