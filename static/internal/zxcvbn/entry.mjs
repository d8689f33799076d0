// The strength estimate of static/meter.js: zxcvbn-ts with the common
// password list (the same list as services/banned/common.txt), the diceware
// list, the keyboard graphs, and English common words, first names and
// messages. It exposes one global, window.WritebackZxcvbn.
import { ZxcvbnFactory } from '@zxcvbn-ts/core'
import { adjacencyGraphs, dictionary as common } from '@zxcvbn-ts/language-common'
import translations from '@zxcvbn-ts/language-en/dist/translations.mjs'
import commonWords from '@zxcvbn-ts/language-en/dist/commonWords.json.mjs'
import firstnames from '@zxcvbn-ts/language-en/dist/firstnames.json.mjs'

const zxcvbn = new ZxcvbnFactory({
  dictionary: { ...common, 'commonWords-en': commonWords, 'firstnames-en': firstnames },
  graphs: adjacencyGraphs,
  translations,
})

window.WritebackZxcvbn = {
  check: (password, userInputs) => zxcvbn.check(password, userInputs),
  // The bundled common passwords, for the banned-password rule's check.
  passwords: common['passwords-common'],
}
