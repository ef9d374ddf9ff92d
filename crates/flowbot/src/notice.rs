//! The desk's completion notices as worker routes: sink `notice:PLATFORM`, lane = the chat the
//! request came from, body = the text (written by `flowbot requests complete`).
//!
//! A platform whose chats can be hand-off destinations (`Running::handoff`) can write to a chat
//! first, so it delivers notices with that same code: the notice is handed to the chat's
//! hand-off deliverer as a request whose text is the notice. A platform without it (the web
//! chat) gets no route: the worker claims only the sinks it has routes for, so its notices
//! are never claimed here, and as a lane waits only behind items of its own `(sink, lane)`
//! they hold up nothing else. The web chat shows them at the user's next visit
//! (`flowbot_web::NOTICE_SINK`); unshown, they are purged with the personal data.

use std::sync::Arc;

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, Route, Running, Verdict};
use flowbot_core::{Queued, QueuedRequest};

use crate::handoff::Routes;

/// The sink of the notices to the users of `platform`.
pub fn sink(platform: &str) -> String {
    format!("notice:{platform}")
}

/// A route per running platform that can write to a chat first.
pub fn routes(running: &[(&'static str, Arc<dyn Running>)], route: Route) -> Routes {
    running
        .iter()
        // Whether the platform offers chats as destinations at all (the target is not used).
        .filter(|(_, platform)| platform.handoff("").is_some())
        .map(|(name, platform)| {
            let deliver: Arc<dyn Deliver> = Arc::new(Notice { platform: platform.clone() });
            (sink(name), (deliver, route))
        })
        .collect()
}

/// Sends a notice to its lane's chat through the platform's hand-off deliverer.
#[derive(Debug)]
struct Notice {
    platform: Arc<dyn Running>,
}

#[async_trait]
impl Deliver for Notice {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(chat) = self.platform.handoff(&item.lane) else {
            return Err(Failed::new(Verdict::GiveUp, "the platform writes to no chat"));
        };
        let notice = Queued {
            request: Some(QueuedRequest {
                reference: String::new(),
                text: item.body.clone(),
                payload: String::new(),
            }),
            ..item.clone()
        };
        chat.deliver(&notice).await
    }
}

#[cfg(test)]
mod tests {
    use flowbot_adapter::Platform;

    use super::*;

    #[test]
    fn the_web_chat_reads_the_sink_the_desk_writes() {
        let web = flowbot_web::Options::default();
        assert_eq!(sink(web.about().name), flowbot_web::NOTICE_SINK);
    }
}
