// Fakes of the Apps Script services Code.gs uses, and a loader that runs Code.gs in a fresh
// vm context with them (the way Apps Script puts every .gs file in one global scope).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const CODE = fs.readFileSync(path.join(__dirname, '..', 'Code.gs'), 'utf8');

function colLetters(n) {
  let s = '';
  while (n > 0) { const r = (n - 1) % 26; s = String.fromCharCode(65 + r) + s; n = Math.floor((n - 1) / 26); }
  return s;
}

function parseA1(a1) {
  const m = /^([A-Z]+)([0-9]+)$/.exec(a1);
  if (!m) throw new Error('fake: bad A1 ' + a1);
  let col = 0;
  for (const ch of m[1]) col = col * 26 + ch.charCodeAt(0) - 64;
  return {row: Number(m[2]), col};
}

class FakeRange {
  constructor(sheet, row, col, rows = 1, cols = 1) { Object.assign(this, {sheet, row, col, rows, cols}); }
  getSheet() { return this.sheet; }
  getRow() { return this.row; }
  getColumn() { return this.col; }
  getA1Notation() { return colLetters(this.col) + this.row; }
  getCell(r, c) { return new FakeRange(this.sheet, this.row + r - 1, this.col + c - 1); }
  getValue() { const v = this.sheet.values[this.getA1Notation()]; return v === undefined ? '' : v; }
  setValues(rows) {
    if (rows.length !== this.rows || rows[0].length !== this.cols) throw new Error('fake: setValues size mismatch');
    rows.forEach((row, r) => row.forEach((v, c) => { this.sheet.values[colLetters(this.col + c) + (this.row + r)] = v; }));
    return this;
  }
  getBackground() { return this.sheet.backgrounds[this.getA1Notation()] || '#ffffff'; }
  setBackground(color) {
    this.sheet.calls.push(['setBackground', this.getA1Notation(), color]);
    if (color === null) delete this.sheet.backgrounds[this.getA1Notation()];
    else this.sheet.backgrounds[this.getA1Notation()] = color;
    return this;
  }
  activate() { this.sheet.activeRange = this; this.sheet.book.activeSheet = this.sheet; return this; }
}

class FakeSheet {
  constructor(book, name) {
    Object.assign(this, {book, name, values: {}, backgrounds: {}, calls: [], activeRange: null});
  }
  getName() { return this.name; }
  getRange(a, b, rows, cols) {
    if (typeof a === 'string') { const p = parseA1(a); return new FakeRange(this, p.row, p.col); }
    return new FakeRange(this, a, b, rows || 1, cols || 1);
  }
  getActiveRange() { return this.activeRange; }
  activate() { this.book.activeSheet = this; return this; }
}

class FakeSpreadsheet {
  constructor(id, names) {
    this.id = id;
    this.sheets = {};
    (names || ['Sheet1']).forEach((n) => { this.sheets[n] = new FakeSheet(this, n); });
    this.activeSheet = this.sheets[(names || ['Sheet1'])[0]];
  }
  getId() { return this.id; }
  getSheetByName(name) { return this.sheets[name] || null; }
  insertSheet(name) {
    if (this.sheets[name]) throw new Error('fake: a sheet named ' + name + ' exists');
    this.sheets[name] = new FakeSheet(this, name);
    return this.sheets[name];
  }
  getActiveSheet() { return this.activeSheet; }
  getActiveRange() { return this.activeSheet.activeRange; }
  select(ref) {  // test helper: put the cursor on "tab!A1"
    const [tab, a1] = ref.split('!');
    this.sheets[tab].getRange(a1).activate();
  }
}

class FakeProperties {
  constructor(name, state) { this.name = name; this.state = state; this.data = {}; }
  check() { if (this.state.authModeNone) throw new Error(`${this.name} used in AuthMode.NONE`); }
  getProperty(k) { this.check(); return Object.prototype.hasOwnProperty.call(this.data, k) ? this.data[k] : null; }
  setProperty(k, v) { this.check(); this.data[k] = String(v); return this; }
  deleteProperty(k) { this.check(); delete this.data[k]; return this; }
}

function response(status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {getResponseCode: () => status, getContentText: () => text};
}

function makeFakes(opts = {}) {
  const state = {authModeNone: false};
  const book = new FakeSpreadsheet(opts.id || 'SHEET-KEY-123', opts.sheets || ['data', 'experiments', 'basic steps']);
  const ui = {
    menus: [], alerts: [], sidebars: [], prompts: [], answer: null, promptAnswer: null,
    ButtonSet: {OK_CANCEL: 'OK_CANCEL', YES_NO: 'YES_NO'},
    Button: {OK: 'OK', CANCEL: 'CANCEL', YES: 'YES', NO: 'NO'},
    createAddonMenu() {
      const menu = {items: [], added: false,
        addItem(label, fn) { this.items.push([label, fn]); return this; },
        addSeparator() { this.items.push(['---', null]); return this; },
        addToUi() { this.added = true; return this; }};
      ui.menus.push(menu);
      return menu;
    },
    alert(message, buttons) { ui.alerts.push(message); return ui.answer; },
    prompt(title, text, buttons) {
      ui.prompts.push(title);
      return {getSelectedButton: () => 'OK', getResponseText: () => ui.promptAnswer};
    },
    showSidebar(html) { ui.sidebars.push(html); }
  };
  const fetches = [];
  const replies = [];
  const triggers = [];
  let triggerCount = 0;
  const props = {
    document: new FakeProperties('DocumentProperties', state),
    script: new FakeProperties('ScriptProperties', state),
    user: new FakeProperties('UserProperties', state)
  };
  const fakes = {
    state, book, ui, fetches, replies, triggers, props,
    identityToken: 'id-token-abc', oauthToken: 'oauth-token-xyz',
    SpreadsheetApp: {getUi: () => ui, getActiveSpreadsheet: () => book},
    UrlFetchApp: {
      fetch(url, options) {
        fetches.push({url, options});
        const next = replies.shift();
        if (!next) throw new Error('fake: no reply scripted for ' + url);
        if (next instanceof Error) throw next;
        return response(next[0], next[1]);
      }
    },
    ScriptApp: {
      getIdentityToken: () => fakes.identityToken,
      getOAuthToken: () => fakes.oauthToken,
      getProjectTriggers: () => triggers.slice(),
      deleteTrigger(t) { triggers.splice(triggers.indexOf(t), 1); },
      newTrigger(handler) {
        const spec = {handler};
        const builder = {
          timeBased() { spec.kind = 'time'; return builder; },
          everyHours(n) { spec.hours = n; return builder; },
          create() {
            const uid = 'trigger-' + (++triggerCount);
            const t = {spec, getHandlerFunction: () => handler, getUniqueId: () => uid};
            triggers.push(t);
            return t;
          }
        };
        return builder;
      }
    },
    PropertiesService: {
      getDocumentProperties: () => { props.document.check(); return props.document; },
      getScriptProperties: () => { props.script.check(); return props.script; },
      getUserProperties: () => { props.user.check(); return props.user; }
    },
    HtmlService: {
      createHtmlOutputFromFile(name) {
        const out = {file: name, title: null, setTitle(t) { out.title = t; return out; }};
        return out;
      }
    }
  };
  return fakes;
}

function load(opts) {
  const fakes = makeFakes(opts);
  const context = vm.createContext({
    SpreadsheetApp: fakes.SpreadsheetApp, UrlFetchApp: fakes.UrlFetchApp, ScriptApp: fakes.ScriptApp,
    PropertiesService: fakes.PropertiesService, HtmlService: fakes.HtmlService, JSON, Error, String, Object,
    Array, Number, encodeURIComponent
  });
  vm.runInContext(CODE, context, {filename: 'Code.gs'});
  return {gs: context, fakes};
}

module.exports = {load, response, CODE};
