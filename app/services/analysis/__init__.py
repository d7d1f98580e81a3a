"""Analysis of a whole corpus, not only answers: a briefing (`brief`), one row per source with
the fields asked for (`extract`), what changed between two sources or two corpora (`compare`).

Every source is read: one pass when the corpus fits the model's window, else map calls over
window-sized parts that share one instruction prefix, reduced level by level until one result
fits; citations are global source ids ([S12]) kept through every level and checked against the
corpus at the end. Each finished call is stored, so an interrupted analysis resumes.
"""
