from db.models import Track, TrackGenre, User
from db.repositories import LikeRepository, TrackRepository, UserRepository


async def test_like_is_unique_per_user_and_track(sessions):
    async with sessions.begin() as s:
        user = await UserRepository(s).upsert_telegram(1, first_name="A", last_name=None, username=None, language="en")
        track = await TrackRepository(s).add(
            Track(spotify_id="x" * 22, name="Song", artists="Artist", genres=[TrackGenre(genre="rock")])
        )
        likes = LikeRepository(s)
        assert await likes.add(user.id, track.id) is True
        assert await likes.add(user.id, track.id) is False
        assert await likes.count(user.id) == 1
    async with sessions() as s:
        assert isinstance(await s.get(User, user.id), User)
