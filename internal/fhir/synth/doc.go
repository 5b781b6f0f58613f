// Package synth generates synthetic US Core 6.1.0 data of any size for
// "smartgate seed" (DESIGN.md, "Command line"): patients with three years
// of care each, the organizations, locations and practitioners behind
// it, and Groups for Bulk Data export.
//
// # Deterministic
//
// The same Options give the same bytes. Every date is before a fixed
// anchor (2025-06-01) in the fixed zone offset of the patient's site; all
// variation comes from math/rand/v2 PCG streams keyed by the seed and the
// patient's number. Patient i depends only on the seed and i, so a larger
// set extends a smaller one (only the Groups change), and charts can be
// built in any order and in parallel. Ids carry the seed, so sets of
// different seeds live side by side and never collide with the dev data
// (package devdata):
//
//	syn-<S>-<n>                          Patient n (1-based) of seed S
//	syn-<S>-<n>-enc-<v>                  Encounter of visit v (1-based, in time order)
//	syn-<S>-<n>-obs-<vital>-<v>          vital signs: bp, heart-rate, resp-rate, temp, spo2, weight, height, bmi,
//	                                     head, head-pct, wfl-pct, bmi-pct (children)
//	syn-<S>-<n>-sr|spm|dr-<panel>-<v>    lab order, specimen and report: bmp, lipid, cbc, a1c, inr, tsh, bnp
//	syn-<S>-<n>-lab-<test>-<v>           lab results (LOINC, reference range, interpretation)
//	syn-<S>-<n>-qr|obs-hvs|phq2-...      Hunger Vital Sign and PHQ-2 screens (QuestionnaireResponse and Observations)
//	syn-<S>-<n>-obs-smoking|orientation|alcohol|pregnancy|pregnancy-intent-<v>   social history
//	syn-<S>-<n>-cond-<problem>           Condition (problem list, health concern; -<v> for a visit's diagnosis)
//	syn-<S>-<n>-medrx|meddisp-<drug>[-<v>][-<fill>]   MedicationRequest and MedicationDispense (-<v>: a visit's illness)
//	syn-<S>-<n>-imm-<vaccine>-<v>        Immunization
//	syn-<S>-<n>-proc-..., -device-...    Procedure and implanted Device
//	syn-<S>-<n>-sr|obs|dr-cxr-<v>        the chest X-ray of the emergency visit (order, finding, report with its image)
//	syn-<S>-<n>-docref|bin-<kind>-<v>    clinical notes (DocumentReference and Binary)
//	syn-<S>-<n>-rp, -coverage, -goal-<problem>, -careteam, -careplan, -provenance
//	syn-<S>-org-<k>, -loc-<k>-clinic|hospital, -pra|prr-<k>-<j>, -org-payer-<name>, -med-<drug>
//	syn-<S>-all, -diabetes, -hypertension, -pediatric, -older-adults    Groups
//
// # US Core
//
// Each resource names in meta.profile the US Core profile it follows
// (Binary and Group have none) and fills every
// must-support element of it; mustsupport_test.go proves this against the
// StructureDefinitions in shared/us-core-6.1.0, with a short documented
// list of elements that exist only in some records (a resolved problem's
// abatement, a declined vaccine's statusReason). Codes come from a small
// curated table of real codes (clinical.go, terms.go): SNOMED CT with
// ICD-10-CM for problems, RxNorm, LOINC with UCUM units and reference
// ranges, CVX, CPT, CDC race and ethnicity, NUBC, HL7 terminology. Names,
// addresses, phone numbers (555-01xx), MRNs and NPIs (valid check digits)
// are made up.
//
// Each patient's chart ends with a Provenance whose targets are all the
// patient's other resources. Memory stays bounded: a chart is about 150
// resources, built and handed over one at a time (Each); only the Groups
// grow with the number of patients.
package synth
