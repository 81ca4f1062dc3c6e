import ArgumentParser
import Foundation

/// What `attune up --demo` feeds the system: a domain corpus every Debian machine has (the
/// license texts in /usr/share/common-licenses) and two tenants who ask about licenses and
/// like their answers in different styles. A share of each is held out for evaluation.
struct DemoData {
    struct Document { var id: String; var text: String }
    struct Exchange { var prompt: String; var response: String }

    static let domain = "licenses"
    static let licenses = ["Apache-2.0", "MPL-2.0"]
    static let tenants = ["acme", "globex"]
    /// Asked of every model at the end; held out from both tenants' training data.
    static let question = "Do we have to keep the copyright headers in files we modify?"

    var trainDocuments: [Document] = []
    var heldOutDocuments: [Document] = []
    var trainExchanges: [String: [Exchange]] = [:]
    var heldOutExchanges: [String: [Exchange]] = [:]

    /// Paragraphs longer than 200 characters, every fifth held out (at most `heldOut` of them),
    /// the first `documents` of the rest for training.
    init(folder: String = "/usr/share/common-licenses", documents: Int, heldOut: Int = 6) throws {
        var all: [Document] = []
        for name in Self.licenses {
            let path = folder + "/" + name
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("the demo corpus needs \(path) (Debian's base-files package)")
            }
            let paragraphs = text.components(separatedBy: "\n\n").map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
            for (i, paragraph) in paragraphs.enumerated() where paragraph.count > 200 {
                all.append(Document(id: "\(name)#\(i)", text: paragraph))
            }
        }
        for (i, document) in all.enumerated() {
            if i % 5 == 4, heldOutDocuments.count < heldOut { heldOutDocuments.append(document) } else { trainDocuments.append(document) }
        }
        trainDocuments = Array(trainDocuments.prefix(documents))
        for tenant in Self.tenants {
            let exchanges = Self.exchanges(tenant)
            trainExchanges[tenant] = Array(exchanges.dropLast(2))
            heldOutExchanges[tenant] = Array(exchanges.suffix(2))
        }
    }

    /// Acme's compliance desk wants a short answer first, then the reason; Globex's wants a checklist.
    private static func exchanges(_ tenant: String) -> [Exchange] {
        let acme = tenant == "acme"
        let pairs: [(String, String, String)] = [
            ("Can we ship this library in our product?",
             "Short answer: yes. Keep the license text and every copyright notice with the copies you ship.",
             "Checklist: 1) include the LICENSE file; 2) keep the copyright notices; 3) record the version you ship."),
            ("Do we have to publish our source code if we use a GPL library?",
             "Short answer: only if you distribute the combined program. Then its source must be offered under the GPL.",
             "Checklist: 1) do we distribute it? 2) if so, offer the complete source; 3) license the whole work under the GPL."),
            ("What does the NOTICE file in an Apache project mean for us?",
             "Short answer: copy it along. Apache-2.0 asks that the attribution notices in NOTICE travel with the work.",
             "Checklist: 1) keep the NOTICE file; 2) show its notices where third-party notices appear; 3) add yours beside them."),
            ("Can we change the code of an MPL-licensed file?",
             "Short answer: yes. The changed file stays under the MPL and its source must be available to your users.",
             "Checklist: 1) keep the MPL header; 2) publish the changed file's source; 3) tell users where to get it."),
            ("Is it fine to use Apache-2.0 code in a closed-source app?",
             "Short answer: yes. Apache-2.0 allows it as long as the license and notices are kept.",
             "Checklist: 1) keep the license; 2) keep the NOTICE attributions; 3) mark the files you changed."),
            ("What happens to the patent license if we sue a contributor?",
             "Short answer: you lose it. Apache-2.0 ends the patent grant for anyone who claims the work infringes a patent.",
             "Checklist: 1) the patent grant ends on litigation; 2) check before filing a claim; 3) ask counsel first."),
            ("Do we need to mention the changes we made to a GPL program?",
             "Short answer: yes. Modified files must carry a notice saying that you changed them and when.",
             "Checklist: 1) add a change notice to each modified file; 2) date it; 3) keep the original notices."),
            ("Can we combine MPL and proprietary files in one program?",
             "Short answer: yes. The MPL applies file by file, so your own files can keep their license.",
             "Checklist: 1) keep MPL files separate; 2) publish changes to them; 3) license your own files as you like."),
            ("May we sell copies of a GPL-3 program?",
             "Short answer: yes. You may charge for copies, but buyers get the same GPL freedoms and the source.",
             "Checklist: 1) charging is allowed; 2) pass on the GPL; 3) provide the corresponding source."),
            (question,
             "Short answer: yes. Keep the existing copyright headers and add your own notice for the changes.",
             "Checklist: 1) keep the existing headers; 2) add a notice for your changes; 3) never remove a copyright line."),
        ]
        return pairs.map { Exchange(prompt: $0.0, response: acme ? $0.1 : $0.2) }
    }
}
